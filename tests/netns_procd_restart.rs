//! What a procd restart (SIGTERM, then a new daemon) does to live grants,
//! on a real kernel with the real binary: with the fw4 backend (OpenWrt's
//! default) the grant stays in fw4's set with its kernel timeout, so a
//! restart after a device or backend change (postern.init's reload) does
//! not close an open port; the new daemon does not know the old grant
//! (status shows none, and it is not re-applied after a later fw4
//! restart). With the standalone nft backend, SIGTERM removes postern's
//! table and every grant with it.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

#[path = "support/fw4_standin.rs"]
mod fw4_standin;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{demo_config, Lab, DEMO_PORT, ROUTER_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");

fn knock(lab: &Lab) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns, EXE, "knock", "10.213.0.1"])
        .args(["tcp:7000", "udp:8000", "tcp:9000"])
        .output()
        .expect("run postern knock");
    assert!(
        out.status.success(),
        "postern knock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_open(lab: &Lab) -> bool {
    lab.connect(IpAddr::V4(ROUTER_V4), DEMO_PORT, Duration::from_millis(500))
        .unwrap()
        .is_some()
}

/// The fw4 stand-in (real fw4's shape, a WAN zone named `uplink`, an
/// Allow-SSH-WAN-style rule accepting the guarded port) with postern's
/// shipped includes, as tests/netns.rs builds it.
fn load_fw4(lab: &Lab, tag: &str) {
    let fw4 = fw4_standin::ruleset(
        &fw4_standin::Wan {
            zone: "uplink",
            dev: &lab.router_dev,
            input: "reject",
        },
        "br-lan",
        DEMO_PORT,
        Some(&fw4_standin::shipped()),
    );
    let path = std::env::temp_dir().join(format!("fw4-{tag}.nft"));
    std::fs::write(&path, fw4).unwrap();
    let out = lab
        .run_in_router(&["nft", "-f", path.to_str().unwrap()])
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fw4_grant_outlives_a_procd_restart() {
    if !root_or_skip("fw4_grant_outlives_a_procd_restart") {
        return;
    }
    let tag = format!("r{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    load_fw4(&lab, &tag);
    let config = demo_config(20).replace("option backend 'nft'", "option backend 'fw4'");
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    assert!(!is_open(&lab));
    knock(&lab);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT}"));
    assert!(is_open(&lab));

    // procd's restart: SIGTERM, wait for the exit, start again.
    let d = lab.daemon(0);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(is_open(&lab), "the grant outlives the stopped daemon");
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    assert!(is_open(&lab), "and the restarted one");
    // The new daemon does not know it (documented in the README).
    let status = lab.status(Path::new(EXE), 1, false).unwrap();
    assert!(status.contains("live grants: 0\n"), "{status}");
    // It grants by itself.
    knock(&lab);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT}"));
    let status = lab.status(Path::new(EXE), 1, false).unwrap();
    assert!(status.contains("live grants: 1\n"), "{status}");
}

#[test]
fn standalone_nft_grant_ends_with_the_daemon() {
    if !root_or_skip("standalone_nft_grant_ends_with_the_daemon") {
        return;
    }
    let tag = format!("s{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    let config = demo_config(20);
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    knock(&lab);
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT}"));
    assert!(is_open(&lab));
    let d = lab.daemon(0);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        !lab.router_ruleset().contains("table inet postern"),
        "SIGTERM removes the standalone table"
    );
}
