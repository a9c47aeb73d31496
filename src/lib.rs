//! postern: a port-knocking and Single Packet Authorization daemon for routers.
//!
//! The crate is split into a sans-IO core and thin I/O edges:
//!
//! * core (no syscalls, no clock reads, no allocation per packet):
//!   [`wire`] turns captured frames into [`wire::Observation`]s,
//!   [`knock`] matches knock sequences, [`spa`] verifies Single Packet
//!   Authorization packets, [`engine`] turns observations into
//!   [`engine::Decision`]s, [`config`] parses and validates UCI files;
//! * edges: [`capture`] (AF_PACKET sockets with an in-kernel BPF filter),
//!   [`firewall`] (nftables and ipset over netlink, dry-run), [`daemon`] (the
//!   event loop), [`client`] (knock and SPA senders, client config), [`random`]
//!   (the kernel's random bytes), [`privileges`] (capabilities dropped after
//!   start), [`runner`] (the admin's named commands for SPA
//!   command mode) and [`demo`] (network-namespace lab); [`cli`] holds the
//!   command line's usage table.
//!
//! Feature `desktop` (default) holds [`client`], [`demo`] and [`import`];
//! router builds leave it out (`--no-default-features`).

#![deny(missing_docs)]

pub mod bans;
pub mod base64;
pub mod capture;
pub mod cidr;
pub mod cli;
#[cfg(feature = "desktop")]
pub mod client;
pub mod config;
pub mod control;
pub mod crash;
pub mod daemon;
#[cfg(feature = "desktop")]
pub mod demo;
pub mod engine;
pub mod firewall;
pub mod fixed_map;
pub mod fixed_vec;
pub mod forward_grants;
pub mod grant_hooks;
pub mod grants;
#[cfg(feature = "desktop")]
pub mod import;
pub mod knock;
pub mod launcher;
pub mod local_networks;
pub mod logger;
pub mod peer;
pub mod port;
pub mod privileges;
pub mod probe_index;
pub mod random;
pub mod replay_file;
pub mod runner;
pub mod spa;
pub mod spawn;
pub mod status;
pub mod status_view;
pub mod time;
pub mod wire;

#[cfg(test)]
mod test_rng;
