//! [`learn`] and [`Watch`] against the real kernel, inside a network
//! namespace of their own (root only; skipped loudly otherwise, but required
//! in CI).

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// Runs `ip` with `args` (split at whitespace).
fn ip(args: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("ip {args}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A namespace, deleted on drop.
struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        if let Err(e) = ip(&format!("netns del {}", self.0)) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Runs `f` in a new thread that first joined network namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: plain syscall on a valid descriptor; it only changes this
        // thread's network namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| "namespace thread panicked".to_string())?
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn learns_own_addresses_subnets_and_default_gateways_of_a_namespace() {
    // SAFETY: `geteuid` cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("local_networks::netns_tests needs root in CI (CI=true)");
        }
        eprintln!(
            "\n*** SKIPPED (needs root): local_networks::netns_tests::\
             learns_own_addresses_subnets_and_default_gateways_of_a_namespace ***\n"
        );
        return;
    }
    let ns = Ns(format!("pwtest-{}-lnet", std::process::id()));
    let n = &ns.0;
    let setup = [
        format!("netns add {n}"),
        format!("-n {n} link set lo up"),
        // veth pairs with both ends inside (no dummy module everywhere).
        format!("-n {n} link add wan0 type veth peer name wan1"),
        format!("-n {n} link add lan0 type veth peer name lan1"),
        format!("-n {n} link set wan1 up"),
        format!("-n {n} link set lan1 up"),
        format!("-n {n} link set wan0 up"),
        format!("-n {n} link set lan0 up"),
        format!("-n {n} addr add 198.51.100.2/24 dev wan0"),
        format!("-n {n} addr add 2001:db8:77::2/64 dev wan0 nodad"),
        format!("-n {n} addr add 192.168.77.1/24 dev lan0"),
        // A point-to-point address, as PPPoE has: the peer is protected.
        format!("-n {n} addr add 10.77.0.2 peer 10.77.0.1/32 dev lan0"),
        format!("-n {n} route add default via 198.51.100.1 dev wan0"),
        format!("-n {n} -6 route add default via 2001:db8:77::1 dev wan0"),
    ];
    for cmd in &setup {
        ip(cmd).unwrap();
    }
    let (found, watch) = in_netns(n, || (learn(), Watch::open())).unwrap();
    let found = found.expect("rtnetlink dump");
    let watch = watch.expect("rtnetlink change socket");
    for own in [
        "198.51.100.2",
        "2001:db8:77::2",
        "192.168.77.1",
        "10.77.0.2",
    ] {
        assert!(found.own.contains(&addr(own)), "{own}: {found:?}");
    }
    for subnet in [
        "198.51.100.0/24",
        "2001:db8:77::/64",
        "192.168.77.0/24",
        "10.77.0.1/32",
    ] {
        assert!(found.on_link.contains(&net(subnet)), "{subnet}: {found:?}");
    }
    assert!(found.gateways.contains(&addr("198.51.100.1")), "{found:?}");
    assert!(
        found.gateways.contains(&addr("2001:db8:77::1")),
        "{found:?}"
    );
    // Loopback and link-local are never banned anyway: not listed.
    assert!(!found.own.iter().any(|a| a.is_loopback()), "{found:?}");
    let (protected, dropped) = found.protected();
    assert_eq!(dropped, 0);
    for a in [
        "198.51.100.1",
        "198.51.100.77",
        "2001:db8:77::9",
        "10.77.0.1",
    ] {
        assert!(
            protected.overlaps(Cidr::host(addr(a))),
            "{a}: {protected:?}"
        );
    }
    assert!(!protected.overlaps(Cidr::host(addr("203.0.113.9"))));

    // A change (a new gateway after a reconnect) is announced.
    let mut buf = vec![0u8; 8192];
    let _ = watch.changed(&mut buf);
    assert!(!watch.changed(&mut buf), "nothing changed yet");
    ip(&format!(
        "-n {n} route replace default via 198.51.100.254 dev wan0"
    ))
    .unwrap();
    let start = Instant::now();
    while !watch.changed(&mut buf) {
        assert!(start.elapsed() < Duration::from_secs(2), "no change event");
        thread::sleep(Duration::from_millis(10));
    }
    let again = in_netns(n, learn).unwrap().unwrap();
    assert!(
        again.gateways.contains(&addr("198.51.100.254")),
        "{again:?}"
    );
    assert!(!again.gateways.contains(&addr("198.51.100.1")), "{again:?}");
}
