//! `config peer`: the other router of a VRRP pair (see docs/ha.md).

use core::net::IpAddr;

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
    /// `option key`: 32 bytes, base64, the same on both routers.
    pub key: Key,
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
