//! `config peer`: the other router of a VRRP pair (see docs/ha.md).

use core::net::IpAddr;

use super::{Config, ConfigError};
use crate::spa::Key;

/// Default `option port` of a peer (UDP, unprivileged: no root needed to bind).
pub const DEFAULT_PEER_PORT: u16 = 62_202;
/// Most enabled peers.
pub const MAX_PEERS: usize = 4;

/// A `config peer` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The section name, or `@peer[N]`.
    pub name: String,
    /// `option enabled` (default true).
    pub enabled: bool,
    /// `option address`: the other router's address.
    pub address: IpAddr,
    /// `option key` (32 bytes, base64, the same on both routers), or the
    /// content of `option key_file` once [`read_key_files`] read it (`None`
    /// until then).
    pub key: Option<Key>,
    /// `option key_file`: an absolute path to a file holding the key.
    pub key_file: Option<String>,
    /// The line of `key` or `key_file` (messages).
    pub key_line: usize,
    /// `option port`: the UDP port both routers use (default [`DEFAULT_PEER_PORT`]).
    pub port: u16,
    /// `option source`: this router's address to send from and listen on
    /// (default: any address of the family).
    pub source: Option<IpAddr>,
    /// `option interface`: the device the peer is reached on (a Linux
    /// device name); the socket then takes datagrams from that device
    /// only, so a flood with the peer's address forged from elsewhere
    /// (the WAN) never reaches it.
    pub interface: Option<String>,
    /// The line of the section (messages).
    pub line: usize,
}

/// Reads the `key_file` of every peer that has one into its `key` (edge
/// I/O: the daemon at start and reload, `postern check`). Errors name the
/// config file and the line of the `key_file` option; the file's content is
/// never echoed.
pub fn read_key_files(file: &str, cfg: &mut Config) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for p in &mut cfg.peers {
        let Some(path) = &p.key_file else { continue };
        let error = |message: String| ConfigError {
            file: file.to_string(),
            line: p.key_line,
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => match Key::from_base64(text.trim()) {
                Ok(k) => p.key = Some(k),
                Err(e) => errors.push(error(format!("key_file '{path}': not a valid key: {e}"))),
            },
            Err(e) => errors.push(error(format!("key_file '{path}': cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
