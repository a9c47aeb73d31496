//! Router pairs: postern's own sealed messages between peers (the conntrackd
//! model; see docs/ha.md).
//!
//! Each router tells its peer(s) about every state change that matters —
//! grants and closes, forwards, bans and unbans, SPA replay-cache entries —
//! with the **remaining** time, and asks for the live state when it starts or
//! becomes master ([`Item::ResyncRequest`]). Datagrams are sealed with
//! XChaCha20-Poly1305 under the peer key ([`seal`]), stamped with the
//! sender's clock and checked against a replay window ([`link::Freshness`]);
//! nothing but a counter changes for a datagram that fails either. The
//! outgoing queue is fixed ([`link::QUEUE`] items a peer), drops counted.
//!
//! Sans-IO: bytes and times in, bytes and items out. The socket and the
//! firewall are the daemon's (`daemon::peer_link`).

pub mod link;
pub mod message;
pub mod seal;

pub use link::{PeerCounters, PeerLink, Refusal};
pub use message::{Item, Items, Name};
pub use seal::MAX_DATAGRAM;
