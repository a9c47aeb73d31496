//! Whether a root-only test (network namespaces, nftables, raw sockets) may
//! run: as root always; otherwise it prints SKIPPED loudly, except under
//! `CI=true`, where a skip is a failure (CI must run every root test).
//! Include with `#[path = "support/root.rs"] mod root;`.
#![allow(dead_code)]

/// True under `CI=true`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when the test may run (root); prints SKIPPED, or fails under CI,
/// otherwise. The test needs root for network namespaces and nftables.
pub fn root_or_skip(test: &str) -> bool {
    root_or_skip_needing(test, "network namespaces, nftables")
}

/// [`root_or_skip`] for a test that needs root for `what`.
pub fn root_or_skip_needing(test: &str, what: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: needs root, and CI=true: netns tests must run in CI"
    );
    eprintln!("\n*** SKIPPED {test}: needs root ({what}). Run: sudo -E cargo test ***\n");
    false
}
