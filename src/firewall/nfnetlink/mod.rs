//! `NETLINK_NETFILTER` plumbing shared by the nftables and ipset backends.
//!
//! [`wire`] is pure (a message writer into caller buffers, the ack parser);
//! `socket` is the only place that sends and receives. Neither knows any
//! subsystem's message layout: nf_tables messages live in
//! [`super::nft::netlink`], ipset messages in [`super::ipset::netlink`].

pub(crate) mod socket;
pub mod wire;
