//! Single Packet Authorization: one encrypted UDP packet asks for ports.
//!
//! Owns postern's native SPA protocol (`docs/spa-protocol.md`): the request
//! format ([`request`]), the sealed wire form ([`seal`]) and its keyed
//! pre-filter ([`prefilter`], [`siphash`]), client keys
//! ([`Key`]), the replay cache ([`replay`]) and the [`verifier`] that turns a
//! UDP payload into an accepted request or a named [`verifier::Refusal`].
//! Sans-IO: no syscalls, no clock reads (time is passed in), no randomness
//! (senders bring nonces and padding), no allocation per packet.

use core::fmt;

pub mod fwknop;
pub mod prefilter;
pub mod replay;
pub mod request;
pub mod seal;
pub mod siphash;
pub mod verifier;

#[cfg(test)]
mod vectors;

pub use replay::{ReplayCache, ReplayEntry, ReplayRecord, SavedEntry};
pub use request::{Kind, RequestRepr, Target};
pub use verifier::{Accepted, Refusal, Refused, SpaCounters, Verifier};

/// Bytes in a client key.
pub const KEY_LEN: usize = 32;

/// A client's 32-byte secret key. `Debug` does not print it; equality is constant-time.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

/// Why a key text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not valid base64.
    Base64(crate::base64::DecodeError),
    /// Decodes to this many bytes instead of 32.
    Length(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Base64(e) => write!(f, "not base64: {e}"),
            KeyError::Length(n) => write!(
                f,
                "decodes to {n} bytes, a key has {KEY_LEN} (make one with 'postern keygen')"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl Key {
    /// A key from raw bytes.
    pub const fn from_bytes(b: [u8; KEY_LEN]) -> Key {
        Key(b)
    }

    /// Parses the base64 form (44 characters with padding).
    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        let bytes = crate::base64::decode(text).map_err(KeyError::Base64)?;
        let arr: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(Key(arr))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        crate::base64::encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        // Constant-time: no early exit on the first differing byte.
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        core::hint::black_box(diff) == 0
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trip_and_errors() {
        let k = Key::from_bytes([0xab; 32]);
        let t = k.to_base64();
        assert_eq!(t.len(), 44);
        assert_eq!(Key::from_base64(&t), Ok(k.clone()));
        assert_eq!(format!("{k:?}"), "Key(…)", "never printed");
        assert_eq!(Key::from_base64("Zm9v"), Err(KeyError::Length(3)));
        assert!(matches!(
            Key::from_base64("not a key"),
            Err(KeyError::Base64(_))
        ));
        assert_ne!(k, Key::from_bytes([0xac; 32]));
    }
}
