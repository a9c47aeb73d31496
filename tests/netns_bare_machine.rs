//! What a bare machine lacks (issue 18): no `nft` tool on a router, no
//! `sysctl` (procps) on a minimal Debian, no `postern` on a normal user's
//! PATH. The daemon's standalone nft backend then builds its table, ban sets
//! included, over netlink, and bans work; the lab sets kernel parameters
//! through `/proc/sys` in the namespace; the demo's config file is private and
//! its hint for a normal user names a command that exists.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{self, Lab, ATTACKER_V4, DEMO_PORT, ROUTER_X_V4};
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SPA_PORT: u16 = 62201;

fn lab(letter: char) -> Lab {
    Lab::new(&format!("m{letter}{}", std::process::id() % 100_000)).unwrap()
}

/// A standalone nft config with an SPA client, banning after 3 failures.
fn config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\
         \toption ban_threshold '3'\n\toption ban_window '60'\n\toption ban_duration '300'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    )
}

/// `n` datagrams of junk the size of an SPA packet from `ns` to `to`'s SPA port.
fn junk_spa(ns: &str, to: IpAddr, n: usize) {
    demo::in_netns(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..n {
            s.send_to(&[0x5a ^ i as u8; 120], SocketAddr::new(to, SPA_PORT))
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .unwrap();
}

/// The router's `nft list set inet postern SET` (empty when it does not exist).
fn list_set(lab: &Lab, set: &str) -> String {
    lab.sh_in_router(&format!("nft list set inet postern {set}"))
        .unwrap_or_default()
}

/// The daemon runs with a PATH that holds no `nft` (as on a router without
/// the nftables package): its setup goes over netlink, and must still make
/// the ban sets, or every ban fails. The attack: junk SPA from an off-link
/// source; it must end up in `ban4` as a network, and the daemon must log no
/// failed ban.
#[test]
fn bans_work_without_the_nft_tool() {
    if !root_or_skip("bans_work_without_the_nft_tool") {
        return;
    }
    let mut lab = lab('n');
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    // A PATH of one empty directory: no nft anywhere the daemon could find it.
    let empty = lab.dir().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let path = format!("PATH={}", empty.display());
    let pid = lab
        .start_daemon_wrapped(Path::new(EXE), &config(&lab), None, &["env", &path])
        .unwrap()
        .pid();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|v| v == path.as_bytes()),
        "the daemon runs with {path}"
    );
    for set in ["ban4", "ban6"] {
        let listed = list_set(&lab, set);
        assert!(
            listed.contains("flags interval,timeout"),
            "set {set} made over netlink: {listed:?}"
        );
    }

    let x = lab.attacker_ns.clone().unwrap();
    junk_spa(&x, IpAddr::V4(ROUTER_X_V4), 3);
    lab.daemons_wait(&format!("banned {ATTACKER_V4} for 300 s"));
    let ban4 = list_set(&lab, "ban4");
    assert!(
        ban4.contains(&format!("elements = {{ {ATTACKER_V4} timeout")),
        "{ban4}"
    );
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains("could not"), "{log}");
}

/// The lab sets kernel parameters without the `sysctl` tool, in the
/// namespace only.
#[test]
fn sysctl_values_are_set_in_the_namespace_only() {
    if !root_or_skip("sysctl_values_are_set_in_the_namespace_only") {
        return;
    }
    let lab = lab('s');
    let key = "/proc/sys/net/ipv4/ip_default_ttl";
    let host_before = std::fs::read_to_string(key).unwrap();
    let value = if host_before.trim() == "77" {
        "78"
    } else {
        "77"
    };
    demo::set_sysctl(&lab.router_ns, "net.ipv4.ip_default_ttl", value).unwrap();
    let inside = demo::in_netns(&lab.router_ns, move || std::fs::read_to_string(key))
        .unwrap()
        .unwrap();
    assert_eq!(inside.trim(), value);
    assert_eq!(std::fs::read_to_string(key).unwrap(), host_before);
    let e = demo::set_sysctl(&lab.router_ns, "net.ipv4.no_such_parameter", "1").unwrap_err();
    assert!(e.to_string().contains("net.ipv4.no_such_parameter"), "{e}");
}

/// The lab (and so the demo) writes its config files 0600: the daemon does
/// not warn that the file holding keys is readable.
#[test]
fn lab_config_files_hold_keys_privately() {
    if !root_or_skip("lab_config_files_hold_keys_privately") {
        return;
    }
    let mut lab = lab('c');
    lab.start_daemon(Path::new(EXE), &demo::demo_config(5), None)
        .unwrap();
    lab.daemons_wait("ready");
    let meta = std::fs::metadata(lab.config_path(0)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), std::fs::metadata(lab.dir()).unwrap().uid());
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains("holds keys but is readable"), "{log}");
}

/// As a normal user, `postern demo` refuses and names a command that runs
/// it: this executable's path under sudo, not a `postern` that is not on PATH.
#[test]
fn demo_as_a_normal_user_names_a_command_that_exists() {
    if !root_or_skip("demo_as_a_normal_user_names_a_command_that_exists") {
        return;
    }
    // A copy that user nobody may run (the build tree may be closed to it).
    let dir = tempfile_dir();
    let exe = dir.join("postern");
    std::fs::copy(EXE, &exe).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .arg(&exe)
        .arg("demo")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("sudo {} demo", exe.display())),
        "{stderr}"
    );
}

/// A new directory under the system temp dir (removed by the test).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-bare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    dir
}
