//! Target `wire`: [`postern::wire::observe`] on arbitrary bytes, both checksum modes.
//!
//! Invariants: no panic; whatever verifies with checksums also parses without
//! them, identically; an observation's addresses and ports are the frame's own
//! bytes, its payload lies inside the frame, its source is a possible client;
//! rebuilding the frame from the observation (fresh checksums) parses back to
//! the same observation.

use core::net::IpAddr;

use postern::port::L4Proto;
use postern::wire::{observe, Checksums, Observation};

use super::net;

/// Runs one input.
pub fn run(data: &[u8]) {
    let verified = observe(data, Checksums::Verify);
    let skipped = observe(data, Checksums::SkipTransport);
    if let Ok(v) = &verified {
        assert_eq!(Ok(*v), skipped, "checksum mode changed the observation");
    }
    if let Ok(obs) = &skipped {
        check_fields(data, obs);
        let rebuilt = net::frame(
            obs.src,
            obs.dst,
            obs.proto.number(),
            obs.src_port,
            obs.dst_port,
            obs.tcp_flags.0,
            obs.payload,
        );
        let again = observe(&rebuilt, Checksums::Verify).expect("rebuilt frame refused");
        assert_eq!(&again, obs, "rebuilt frame observed differently");
    }
}

/// The observation is read from where the headers say.
fn check_fields(frame: &[u8], obs: &Observation<'_>) {
    let (src, dst, l4) = match frame[0] >> 4 {
        4 => {
            let s: [u8; 4] = frame[12..16].try_into().unwrap();
            let d: [u8; 4] = frame[16..20].try_into().unwrap();
            (
                IpAddr::from(s),
                IpAddr::from(d),
                usize::from(frame[0] & 15) * 4,
            )
        }
        6 => {
            let s: [u8; 16] = frame[8..24].try_into().unwrap();
            let d: [u8; 16] = frame[24..40].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d), 40)
        }
        v => panic!("observed a version {v} frame"),
    };
    assert_eq!((obs.src, obs.dst), (src, dst));
    let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    assert_eq!((obs.src_port, obs.dst_port), (be16(l4), be16(l4 + 2)));
    match obs.proto {
        L4Proto::Tcp => assert_eq!(obs.tcp_flags.0, frame[l4 + 13]),
        L4Proto::Udp => assert_eq!(obs.tcp_flags.0, 0),
    }
    let start = obs.payload.as_ptr() as usize - frame.as_ptr() as usize;
    assert!(start >= l4 + 8 && start + obs.payload.len() <= frame.len());
    assert!(!(obs.src.is_unspecified() || obs.src.is_loopback() || obs.src.is_multicast()));
}
