//! fwknop's symmetric crypto: OpenSSL-compatible AES-256-CBC and HMAC.
//!
//! Owns the primitives the fwknop wire format needs, written here over the
//! block cipher (`aes`) and the hash functions (`sha2`, `sha1`, `md-5`):
//! OpenSSL's `EVP_BytesToKey` (MD5, one iteration, 8-byte salt) that turns a
//! key and the packet's salt into an AES key and IV, the CBC chaining,
//! PKCS#7 padding, and the HMAC construction (RFC 2104) over any of the
//! hashes. Also the base64 digests fwknop writes into its plaintext. No I/O,
//! no allocation: callers bring the buffers.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, KeyInit};
use aes::Aes256;
use sha2::digest::core_api::BlockSizeUser;
use sha2::Digest;

/// AES block bytes.
pub const BLOCK: usize = 16;
/// Bytes of the salt after `Salted__`.
pub const SALT_LEN: usize = 8;
/// Largest digest (SHA-512) in bytes.
pub const MAX_DIGEST_LEN: usize = 64;
/// Largest hash block (SHA-384/512) in bytes: longer HMAC keys are hashed first.
pub const MAX_BLOCK_LEN: usize = 128;

/// The AES-256 key and the IV that `EVP_BytesToKey(MD5, salt, key, 1 round)` derives.
pub struct KeyIv {
    /// The AES-256 key.
    pub key: [u8; 32],
    /// The CBC initialisation vector.
    pub iv: [u8; BLOCK],
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration: `D1 = MD5(pass ‖
/// salt)`, `Di = MD5(Di-1 ‖ pass ‖ salt)`; key and IV are the first 48 bytes
/// of `D1 ‖ D2 ‖ D3`.
pub fn bytes_to_key(pass: &[u8], salt: &[u8; SALT_LEN]) -> KeyIv {
    let mut material = [0u8; 48];
    let mut prev: Option<[u8; 16]> = None;
    for chunk in material.chunks_mut(16) {
        let mut h = md5::Md5::new();
        if let Some(p) = prev {
            h.update(p);
        }
        h.update(pass);
        h.update(salt);
        let d: [u8; 16] = h.finalize().into();
        chunk.copy_from_slice(&d);
        prev = Some(d);
    }
    let mut out = KeyIv {
        key: [0; 32],
        iv: [0; BLOCK],
    };
    out.key.copy_from_slice(&material[..32]);
    out.iv.copy_from_slice(&material[32..]);
    out
}

/// Why a ciphertext did not decrypt to a padded plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CbcError {
    /// Empty or not a whole number of blocks.
    Length,
    /// The PKCS#7 padding is malformed.
    Padding,
}

/// Decrypts `data` in place with AES-256-CBC and removes the PKCS#7 padding;
/// returns the plaintext length.
pub fn cbc_decrypt(k: &KeyIv, data: &mut [u8]) -> Result<usize, CbcError> {
    if data.is_empty() || data.len() % BLOCK != 0 {
        return Err(CbcError::Length);
    }
    let aes = Aes256::new(GenericArray::from_slice(&k.key));
    let mut prev = k.iv;
    for block in data.chunks_exact_mut(BLOCK) {
        let mut saved = [0u8; BLOCK];
        saved.copy_from_slice(block);
        aes.decrypt_block(GenericArray::from_mut_slice(block));
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        prev = saved;
    }
    unpad(data)
}

/// Length of `data` without its PKCS#7 padding (1 to 16 bytes, each equal to the count).
fn unpad(data: &[u8]) -> Result<usize, CbcError> {
    let n = usize::from(*data.last().ok_or(CbcError::Length)?);
    if n == 0 || n > BLOCK || n > data.len() {
        return Err(CbcError::Padding);
    }
    let (rest, pad) = data.split_at(data.len() - n);
    if pad.iter().any(|&b| usize::from(b) != n) {
        return Err(CbcError::Padding);
    }
    Ok(rest.len())
}

/// HMAC (RFC 2104) of the concatenation of `parts` under `key` with hash
/// `D`, written to the start of `out`; returns its length.
pub fn hmac<D: Digest + BlockSizeUser>(
    key: &[u8],
    parts: &[&[u8]],
    out: &mut [u8; MAX_DIGEST_LEN],
) -> usize {
    let block = D::block_size();
    let mut k = [0u8; MAX_BLOCK_LEN];
    if key.len() > block {
        let d = D::digest(key);
        k[..d.len()].copy_from_slice(&d);
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut pad = [0u8; MAX_BLOCK_LEN];
    for (p, b) in pad.iter_mut().zip(k.iter()).take(block) {
        *p = b ^ 0x36;
    }
    let mut inner = D::new();
    inner.update(&pad[..block]);
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    for (p, b) in pad.iter_mut().zip(k.iter()).take(block) {
        *p = b ^ 0x5c;
    }
    let mut outer = D::new();
    outer.update(&pad[..block]);
    outer.update(&inner);
    let d = outer.finalize();
    out[..d.len()].copy_from_slice(&d);
    d.len()
}

/// The hash of `data` with `D`, written to the start of `out`; returns its length.
pub fn digest<D: Digest>(data: &[u8], out: &mut [u8; MAX_DIGEST_LEN]) -> usize {
    let d = D::digest(data);
    out[..d.len()].copy_from_slice(&d);
    d.len()
}

/// Constant-time equality of two byte strings (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// AES-256-CBC encryption with PKCS#7 padding of `data[..len]` in place
/// (`data` must have room for the padding); returns the ciphertext length.
/// Only tests and benches seal fwknop packets: postern never sends them
/// (hidden from the docs; unused by the daemon, so the linker drops it).
#[doc(hidden)]
pub fn cbc_encrypt(k: &KeyIv, data: &mut [u8], len: usize) -> usize {
    use aes::cipher::BlockEncrypt;
    let pad = BLOCK - len % BLOCK;
    for b in &mut data[len..len + pad] {
        *b = pad as u8;
    }
    let aes = Aes256::new(GenericArray::from_slice(&k.key));
    let mut prev = k.iv;
    for block in data[..len + pad].chunks_exact_mut(BLOCK) {
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        aes.encrypt_block(GenericArray::from_mut_slice(block));
        prev.copy_from_slice(block);
    }
    len + pad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hash_vectors() {
        let mut out = [0u8; MAX_DIGEST_LEN];
        // RFC 1321 and FIPS 180 "abc" vectors.
        let n = digest::<md5::Md5>(b"abc", &mut out);
        assert_eq!(hex(&out[..n]), "900150983cd24fb0d6963f7d28e17f72");
        let n = digest::<md5::Md5>(b"", &mut out);
        assert_eq!(hex(&out[..n]), "d41d8cd98f00b204e9800998ecf8427e");
        let n = digest::<sha1::Sha1>(b"abc", &mut out);
        assert_eq!(hex(&out[..n]), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let n = digest::<sha2::Sha256>(b"abc", &mut out);
        assert_eq!(
            hex(&out[..n]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_rfc4231_and_rfc2202() {
        let mut out = [0u8; MAX_DIGEST_LEN];
        // RFC 4231 test case 2 ("Jefe").
        let parts: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        let n = hmac::<sha2::Sha256>(b"Jefe", parts, &mut out);
        assert_eq!(
            hex(&out[..n]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let n = hmac::<sha2::Sha384>(b"Jefe", parts, &mut out);
        assert_eq!(hex(&out[..n]), "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649");
        let n = hmac::<sha2::Sha512>(b"Jefe", parts, &mut out);
        assert_eq!(hex(&out[..n]), "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
        // RFC 4231 test case 6: a 131-byte key is hashed first.
        let n = hmac::<sha2::Sha256>(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
            &mut out,
        );
        assert_eq!(
            hex(&out[..n]),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // RFC 2202 test case 2 (HMAC-SHA1).
        let n = hmac::<sha1::Sha1>(b"Jefe", parts, &mut out);
        assert_eq!(hex(&out[..n]), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -md md5 -pass pass:password -S 0102030405060708 -P`
        // (OpenSSL 3.0.x, Debian 12).
        let k = bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            hex(&k.key),
            "e7b0971e52ca5cc8d0539fb3412f6316f7ba2e6ee293d9f3457b99436b51ce02"
        );
        assert_eq!(hex(&k.iv), "8d450e2ed75a84a923d4eac9fe49226b");
    }

    #[test]
    fn cbc_decrypts_openssl_output() {
        // `printf 'fwknop-compatible' | openssl enc -aes-256-cbc -md md5
        //  -pass pass:password -S 0102030405060708 | xxd -p` (OpenSSL 3 writes
        //  no `Salted__` header when the salt is given).
        let mut ct = hex_bytes("48f3c593c415a4e2c80e2e73ad0ace313538e109e97fa22f3fc7cbc24b932a69");
        let k = bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8]);
        let n = cbc_decrypt(&k, &mut ct).unwrap();
        assert_eq!(&ct[..n], b"fwknop-compatible");
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn cbc_round_trip_and_padding_errors() {
        let k = bytes_to_key(b"k", &[9; SALT_LEN]);
        for len in [0usize, 1, 15, 16, 17, 100] {
            let mut buf = vec![0x41u8; len + BLOCK];
            let c = cbc_encrypt(&k, &mut buf, len);
            assert_eq!(c % BLOCK, 0);
            assert!(c > len);
            assert_eq!(cbc_decrypt(&k, &mut buf[..c]), Ok(len));
            assert!(buf[..len].iter().all(|&b| b == 0x41));
        }
        assert_eq!(cbc_decrypt(&k, &mut []), Err(CbcError::Length));
        assert_eq!(cbc_decrypt(&k, &mut [0; 15]), Err(CbcError::Length));
        assert_eq!(unpad(&[1, 2, 3, 0]), Err(CbcError::Padding));
        assert_eq!(unpad(&[1, 2, 3, 17]), Err(CbcError::Padding));
        assert_eq!(unpad(&[1, 3, 2, 2]), Ok(2));
        assert_eq!(unpad(&[1, 3, 3, 2]), Err(CbcError::Padding));
        assert_eq!(unpad(&[5, 5, 5, 5]), Err(CbcError::Padding));
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
