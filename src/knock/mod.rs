//! Knock sequences: per-source progress through static `proto:port` sequences.
//!
//! [`Matcher`] owns the compiled sequences and a fixed-capacity
//! [`table::ProgressTable`]. It is a pure state machine: the caller passes the
//! time and the packet's source and port; it never reads a clock, does no I/O
//! and does not allocate after construction.

mod matcher;
pub mod table;

pub use matcher::{KnockCounters, Matcher, SequenceSteps};
pub use table::KNOCK_TABLE_CAPACITY;
