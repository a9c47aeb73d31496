//! The LuCI page end to end in headless Chromium (Debian's `chromium`,
//! driven by playwright-core from npm: tests/luci/browser_walk.js), against
//! our stub of LuCI's JS runtime and of uhttpd/rpcd/ubus (tests/luci/stub,
//! tests/luci/server.js: the real page and the real `postern` binary), with
//! a real daemon in network namespaces for live grants and bans. The walk:
//! log in; add a client, generate its key, see its stanza and QR code
//! (decoded with jsQR); each invalid input shows its message; Save & Apply
//! refuses what the daemon refuses and saves nothing; a good Save & Apply
//! writes a file `postern check` accepts and the daemon reloads; a live
//! grant is revoked and a ban lifted from the page; a refused reload shows.
//!
//! Set POSTERN_SCREENSHOTS=DIR to keep the screenshots (docs/luci/ holds them),
//! UCODE=/path/to/ucode (and UCODE_LIB=dir of its fs.so) to have the backend
//! run the real rpcd ucode plugin instead of its postern commands (no
//! registry ships ucode, so CI runs without).
//! Root, chromium and `npm ci` in tests/luci are needed; without them the
//! test prints SKIPPED loudly, except under CI=true, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use postern::demo::{Lab, ATTACKER_V4, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};

const EXE: &str = env!("CARGO_BIN_EXE_postern");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn ready_or_skip(test: &str) -> bool {
    let luci = repo().join("tests/luci");
    // SAFETY: geteuid cannot fail.
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root (network namespaces)")
    } else if !Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium (apt-get install chromium)")
    } else if !luci.join("node_modules/playwright-core").is_dir()
        || !luci.join("node_modules/jsqr").is_dir()
    {
        Some("tests/luci/node_modules (cd tests/luci && npm ci)")
    } else {
        None
    };
    let Some(what) = missing else { return true };
    assert!(!in_ci(), "{test}: needs {what}, and CI=true");
    eprintln!("\n*** SKIPPED {test}: needs {what} ***\n");
    false
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn luci_page_in_chromium() {
    if !ready_or_skip("luci_page_in_chromium") {
        return;
    }
    let tag = format!("lu{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    let config = format!(
        "config postern 'main'\n\toption enabled '1'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '3'\n\toption ban_window '60'\n\toption ban_duration '300'\n\n\
         config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '300'\n\n\
         config client 'phone'\n\toption key 'cG9zdGVybi1sdWNpLXRlc3QtY2xpZW50LWtleS0zMmI='\n\
         \tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    );
    lab.start_daemon(Path::new(EXE), &config, None).unwrap();
    let pid = lab.daemon(0).pid();
    let shots = std::env::var("POSTERN_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| lab.dir().join("shots"));
    let out = Command::new("node")
        .arg(repo().join("tests/luci/browser_walk.js"))
        .env("POSTERN", EXE)
        .env("CONFIG", lab.config_path(0))
        .env("SOCKET", lab.control_path(0))
        .env("DAEMON_PID", pid.to_string())
        .env("CLIENT_NS", &lab.client_ns)
        .env("ATTACKER_NS", lab.attacker_ns.clone().unwrap())
        .env("ROUTER_V4", ROUTER_V4.to_string())
        .env("ROUTER_X_V4", ROUTER_X_V4.to_string())
        .env("CLIENT_V4", CLIENT_V4.to_string())
        .env("ATTACKER_V4", ATTACKER_V4.to_string())
        .env("SHOTS", &shots)
        .output()
        .unwrap();
    let log = lab.daemon(0).log().join("\n");
    assert!(
        out.status.success(),
        "{}{}\ndaemon log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    // The page's Save & Apply reached the daemon: a reload of the saved file.
    assert!(log.contains("reloaded:"), "{log}");
    assert!(
        log.contains("revoked tcp:2222 for 10.213.0.2 (control socket)"),
        "{log}"
    );
    assert!(log.contains("lifted the ban of 10.213.1.2"), "{log}");
}
