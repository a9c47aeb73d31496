//! Knock sequences: per-source progress, in fixed-capacity tables.
//!
//! * [`Matcher`]: static `proto:port` sequences;
//! * [`totp`]: sequences derived from a key and the time (change every period);
//! * [`encoded`]: sequences that spell out the port to open;
//! * [`authenticated`]: sequences that carry a sealed, source-bound request;
//! * [`volume`]: knocks counted per source network, whatever they were, and
//!   limited (the only per-source effect of knocking; see its docs).
//!
//! All are pure state machines: the caller passes the time and the packet's
//! source and port; nothing reads a clock, does I/O or allocates after
//! construction. They share [`table::ProgressTable`] and its eviction rule.

pub mod authenticated;
pub mod encoded;
pub mod hmac;
mod matcher;
pub mod table;
pub mod totp;
pub mod volume;
pub mod window;

pub use matcher::{KnockCounters, Matcher, SequenceSteps};
pub use table::KNOCK_TABLE_CAPACITY;
