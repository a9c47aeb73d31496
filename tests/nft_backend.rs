//! The nftables backend against the real kernel, each test in a fresh network
//! namespace (the host's ruleset is never touched).
//!
//! Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN for `unshare`) and the `nft` tool.
//! Without root each test prints `SKIPPED (needs root)` and passes, unless
//! `CI=true`, where skipping is a failure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern::cidr::Cidr;
use postern::firewall::nft::NftBackend;
use postern::firewall::{Backend, Grant};
use postern::port::PortSpec;

/// Runs `f` on a new thread that first moves into a new network namespace.
/// Returns without running `f` (loudly) when not root.
fn in_netns(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Some(qemu) = std::env::var_os("POSTERN_QEMU_USER") {
        // Only the cross runner sets this; the skip is loud, never silent.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (qemu-user: {} has no NETLINK_NETFILTER sockets): {name} — \
             the emulated router (scripts/vm/e2e.sh) runs the nft backend on MIPS",
            qemu.to_string_lossy()
        );
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name}: needs root, and CI=true forbids skipping");
        }
        // Straight to fd 2: the test harness captures `eprintln!` of passing tests.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (needs root): {name} — run `cargo test --test nft_backend` as root"
        );
        return;
    }
    let outer = netns_id("/proc/self/ns/net");
    let joined = std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespaces; no memory is involved.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let mine = netns_id("/proc/thread-self/ns/net");
        assert_ne!(mine, outer, "thread still in the host namespace");
        // Children are forked from this thread and must inherit its namespace;
        // otherwise `nft` would change the host's ruleset.
        let child = sh("readlink /proc/self/ns/net");
        assert_eq!(
            child.trim(),
            mine,
            "spawned children are not in the test netns"
        );
        f();
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

fn netns_id(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `nft ARGS`, returning stdout with runs of white space folded to one space
/// (nft wraps long element lists); panics on failure.
fn nft(args: &str) -> String {
    let out = Command::new("nft")
        .args(args.split_whitespace())
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `nft -f -` with `script`; panics on failure.
fn nft_script(script: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nft -f - failed:\n{script}"
    );
}

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, d))
}

fn grant(addr: IpAddr, port: PortSpec, secs: u64) -> Grant {
    Grant {
        addr,
        port,
        timeout: Duration::from_secs(secs),
    }
}

/// Milliseconds left on the element of `who` (e.g. `10.0.0.2 . tcp . 22`),
/// read from its `expires 29s996ms` (units d, h, m, s, ms).
fn expires_ms(table: &str, set: &str, who: &str) -> u64 {
    let e = elements(table, set);
    let at = e.find(who).unwrap_or_else(|| panic!("{who} not in {e}"));
    let rest = &e[at..];
    let text = rest
        .split("expires ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .unwrap_or_else(|| panic!("no expiry in {rest}"));
    let (mut total, mut num) = (0u64, 0u64);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            num = num * 10 + u64::from(d);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                1
            }
            ('d', _) => 86_400_000,
            ('h', _) => 3_600_000,
            ('m', _) => 60_000,
            ('s', _) => 1000,
            _ => panic!("bad expiry {text}"),
        };
        total += num * unit;
        num = 0;
    }
    total
}

/// The element lines of `nft list set inet TABLE SET`, joined.
fn elements(table: &str, set: &str) -> String {
    let text = nft(&format!("list set inet {table} {set}"));
    match text.split_once("elements = {") {
        Some((_, rest)) => rest.split('}').next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

#[test]
fn standalone_setup_grant_regrant_revoke_reload_teardown() {
    in_netns("standalone lifecycle", || {
        let mut b = NftBackend::standalone();
        b.setup(&[PortSpec::tcp(22), PortSpec::udp(8000)]).unwrap();
        let table = nft("list table inet postern");
        assert!(
            table.contains("elements = { tcp . 22, udp . 8000 }"),
            "{table}"
        );
        assert!(table.contains("hook input priority filter - 5; policy accept;"));
        assert!(
            table.contains("ip saddr . meta l4proto . th dport @allow4 ip saddr != @ban4 accept")
        );
        assert!(
            table.contains("meta l4proto . th dport @guard meta l4proto tcp reject with tcp reset")
        );
        assert!(table.contains("meta l4proto . th dport @guard reject"));
        assert!(elements("postern", "allow4").is_empty());

        b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap();
        let e = elements("postern", "allow4");
        assert!(e.contains("10.0.0.2 . tcp . 22 timeout 30s expires"), "{e}");

        // Re-granting restarts the timeout (here: with a new one, which a plain
        // re-add would not apply).
        b.grant(&grant(v4(2), PortSpec::tcp(22), 3600)).unwrap();
        let e = elements("postern", "allow4");
        assert!(e.contains("10.0.0.2 . tcp . 22 timeout 1h expires"), "{e}");
        assert_eq!(e.matches("10.0.0.2").count(), 1, "{e}");

        b.revoke(v4(2), PortSpec::tcp(22)).unwrap();
        assert!(elements("postern", "allow4").is_empty());
        b.revoke(v4(2), PortSpec::tcp(22))
            .expect("revoking an absent grant is fine");

        // A reload with a different guard list keeps live grants and does not
        // duplicate rules.
        b.grant(&grant(v4(3), PortSpec::tcp(22), 600)).unwrap();
        b.grant(&grant(v4(4), PortSpec::udp(8000), 600)).unwrap();
        b.setup(&[PortSpec::tcp(2222)]).unwrap();
        let table = nft("list table inet postern");
        assert!(table.contains("elements = { tcp . 2222 }"), "{table}");
        assert_eq!(table.matches("@guard reject").count(), 1, "{table}");
        assert_eq!(table.matches("established,related accept").count(), 1);
        let e = elements("postern", "allow4");
        assert!(e.contains("10.0.0.3 . tcp . 22"), "{e}");
        assert!(e.contains("10.0.0.4 . udp . 8000"), "{e}");
        b.setup(&[]).unwrap();
        let table = nft("list table inet postern");
        assert!(!table.contains("tcp . 2222"), "{table}");
        assert!(elements("postern", "allow4").contains("10.0.0.3 . tcp . 22"));

        b.teardown().unwrap();
        assert!(!nft("list tables").contains("postern"));
        b.teardown().expect("teardown twice is fine");
    });
}

#[test]
fn regrant_with_the_same_timeout_restarts_it() {
    in_netns("re-grant restarts the timeout", || {
        let mut b = NftBackend::standalone();
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        let who = "10.0.0.2 . tcp . 22";
        b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap();
        // Wait (bounded) until at least 1.5 s have run off the clock.
        let start = Instant::now();
        while expires_ms("postern", "allow4", who) > 28_500 {
            assert!(start.elapsed() < Duration::from_secs(20), "clock stuck");
            std::thread::sleep(Duration::from_millis(200));
        }
        b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap();
        let left = expires_ms("postern", "allow4", who);
        assert!(left > 28_500, "timeout not restarted: {left} ms left");
        b.teardown().unwrap();
    });
}

#[test]
fn standalone_ipv6_and_mapped_addresses() {
    in_netns("standalone ipv6", || {
        let mut b = NftBackend::standalone();
        b.setup(&[PortSpec::udp(8000)]).unwrap();
        let a6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5));
        b.grant(&grant(a6, PortSpec::udp(8000), 90)).unwrap();
        let e = elements("postern", "allow6");
        assert!(
            e.contains("2001:db8::5 . udp . 8000 timeout 1m30s expires"),
            "{e}"
        );
        // An IPv4-mapped IPv6 address goes to the IPv4 set.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped());
        b.grant(&grant(mapped, PortSpec::tcp(443), 90)).unwrap();
        assert!(elements("postern", "allow4").contains("192.0.2.9 . tcp . 443"));
        b.revoke(a6, PortSpec::udp(8000)).unwrap();
        assert!(elements("postern", "allow6").is_empty());
        b.revoke(mapped, PortSpec::tcp(443)).unwrap();
        assert!(elements("postern", "allow4").is_empty());
        b.teardown().unwrap();
    });
}

#[test]
fn standalone_grant_expires_in_the_kernel() {
    in_netns("grant expiry", || {
        let mut b = NftBackend::standalone();
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        b.grant(&grant(v4(7), PortSpec::tcp(22), 1)).unwrap();
        assert!(elements("postern", "allow4").contains("10.0.0.7"));
        // No assertion on speed: wait up to 20 s for the kernel to drop it.
        let start = Instant::now();
        while elements("postern", "allow4").contains("10.0.0.7") {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "element did not expire"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        b.teardown().unwrap();
    });
}

#[test]
fn standalone_errors_carry_context() {
    in_netns("standalone errors", || {
        // No setup: the table does not exist.
        let mut b = NftBackend::standalone();
        let err = b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap_err();
        assert_eq!(
            err.context, "add 10.0.0.2 . tcp . 22 to inet postern allow4",
            "{err}"
        );
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOENT), "{err}");
        // A zero timeout would make a permanent element: refused before sending.
        // It is refused before the delete, so a live grant stays.
        b.setup(&[]).unwrap();
        b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap();
        let err = b.grant(&grant(v4(2), PortSpec::tcp(22), 0)).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(elements("postern", "allow4").contains("10.0.0.2 . tcp . 22 timeout 30s"));
        // The backend still works after errors.
        b.grant(&grant(v4(3), PortSpec::tcp(22), 30)).unwrap();
        assert!(elements("postern", "allow4").contains("10.0.0.3"));
    });
}

/// The fw4 table of an older postern include: the allow sets only, no
/// guard (what postern 0.1 shipped; setup must refuse it).
const FW4_OLD: &str = "table inet fw4 {
  set postern_allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
  set postern_allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
  chain input { type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname \"wan\" jump input_wan
  }
  chain input_wan {
    meta nfproto ipv4 ip saddr . meta l4proto . th dport @postern_allow4 counter accept
    meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @postern_allow6 counter accept
    reject
  }
}
";

/// A table shaped like OpenWrt fw4's, with the shipped postern includes
/// where fw4 puts them (table-pre, the top of the base input/forward chains).
fn fw4_like() -> String {
    let files = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files");
    let read = |f: &str| std::fs::read_to_string(files.join(f)).unwrap();
    format!(
        "table inet fw4 {{\n{}\n\
         chain input {{ type filter hook input priority filter; policy drop;\n{}\n\
         ct state established,related accept\n iifname \"wan\" jump input_wan\n}}\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n{}\n\
         ct state established,related accept\n}}\n\
         chain input_wan {{\n reject\n}}\n}}\n",
        read("fw4-table-pre.nft"),
        read("fw4-chain-pre-input.nft"),
        read("fw4-chain-pre-forward.nft"),
    )
}

#[test]
fn fw4_grant_and_revoke() {
    in_netns("fw4 flavour", || {
        nft_script(&fw4_like());
        let mut b = NftBackend::fw4();
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        b.grant(&grant(v4(2), PortSpec::tcp(22), 30)).unwrap();
        let e = elements("fw4", "postern_allow4");
        assert!(e.contains("10.0.0.2 . tcp . 22 timeout 30s expires"), "{e}");
        let a6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        b.grant(&grant(a6, PortSpec::tcp(22), 30)).unwrap();
        assert!(elements("fw4", "postern_allow6").contains("2001:db8::1 . tcp . 22"));
        b.revoke(v4(2), PortSpec::tcp(22)).unwrap();
        assert!(elements("fw4", "postern_allow4").is_empty());
        // Teardown leaves fw4 (and its grants) alone.
        b.teardown().unwrap();
        assert!(elements("fw4", "postern_allow6").contains("2001:db8::1"));
        assert!(!nft("list tables").contains("postern"));
    });
}

#[test]
fn fw4_setup_fails_clearly_without_the_include() {
    in_netns("fw4 missing sets", || {
        let msg = "fw4 set postern_allow4 missing: is the postern fw4 include installed?";
        let mut b = NftBackend::fw4();
        // No fw4 table at all.
        let err = b.setup(&[]).unwrap_err();
        assert_eq!(err.context, msg, "{err}");
        // fw4 without postern's sets.
        nft_script("table inet fw4 {\n chain input_wan {\n counter\n }\n}\n");
        let err = b.setup(&[]).unwrap_err();
        assert_eq!(err.context, msg, "{err}");
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOENT));
        // Only the IPv4 set: the IPv6 one is named.
        nft_script(
            "add set inet fw4 postern_allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }",
        );
        let err = b.setup(&[]).unwrap_err();
        assert!(
            err.context.starts_with("fw4 set postern_allow6 missing"),
            "{err}"
        );
        nft_script(
            "add set inet fw4 postern_allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }",
        );
        // The include of postern 0.1 (allow sets, no guard): refused, since
        // the guarded ports would stay open while postern says "guarding".
        let err = b.setup(&[PortSpec::tcp(22)]).unwrap_err();
        assert!(
            err.context.starts_with("fw4 set postern_guard missing")
                && err.context.contains("guarded ports would stay open"),
            "{err}"
        );
        nft_script("delete table inet fw4");
        nft_script(&fw4_like());
        b.setup(&[]).unwrap();
    });
}

#[test]
fn monitor_sees_fw4_restart_but_not_unrelated_changes() {
    use postern::firewall::nft::monitor::Monitor;
    use std::os::fd::AsFd;
    in_netns("monitor_sees_fw4_restart_but_not_unrelated_changes", || {
        let sets = ["postern_allow4", "postern_allow6"];
        let fw4 = "table inet fw4 { set postern_allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }; }";
        let mon = Monitor::open().expect("monitor socket");
        let mut buf = vec![0u8; 65536];
        let wait = |mon: &Monitor| {
            let mut fds = [nix::poll::PollFd::new(
                mon.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16));
        };
        // An unrelated table: no change for us.
        nft("add table inet other");
        wait(&mon);
        assert!(!mon.drain(&mut buf, "fw4", &sets).unwrap().needs_resync());
        // fw4 comes up with our set, then `fw4 restart` deletes and recreates it.
        let file = std::env::temp_dir().join(format!("mon-fw4-{}.nft", std::process::id()));
        std::fs::write(&file, fw4).unwrap();
        nft(&format!("-f {}", file.display()));
        wait(&mon);
        let c = mon.drain(&mut buf, "fw4", &sets).unwrap();
        assert!(c.created && !c.removed, "{c:?}");
        nft("delete table inet fw4");
        nft(&format!("-f {}", file.display()));
        let _ = std::fs::remove_file(&file);
        wait(&mon);
        let c = mon.drain(&mut buf, "fw4", &sets).unwrap();
        assert!(c.removed && c.created, "{c:?}");
        // Quiet again: nothing queued.
        assert_eq!(
            mon.drain(&mut buf, "fw4", &sets).unwrap(),
            Default::default()
        );
    });
}

/// Whether `addr` lies in a network of the interval set `set` (`nft get
/// element` finds the interval holding it).
fn in_ban_set(table: &str, set: &str, addr: &str) -> bool {
    Command::new("nft")
        .args(["get", "element", "inet", table, set, "{", addr, "}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Bans are networks with kernel timeouts, through both ways of setting the
/// table up (`nft -f` and the netlink batch, which now has the ban sets too).
#[test]
fn standalone_bans_are_networks_with_kernel_timeouts() {
    in_netns("standalone bans", || {
        for (how, mut b) in [
            ("nft -f", NftBackend::standalone()),
            ("netlink", NftBackend::standalone_over_netlink()),
        ] {
            b.setup(&[PortSpec::tcp(22)]).unwrap();
            b.ban(Cidr::host(v4(7)), Duration::from_secs(300)).unwrap();
            let e = elements("postern", "ban4");
            assert!(e.contains("10.0.0.7 timeout 5m expires"), "{how}: {e}");
            assert!(in_ban_set("postern", "ban4", "10.0.0.7"));
            assert!(!in_ban_set("postern", "ban4", "10.0.0.6"));
            assert!(!in_ban_set("postern", "ban4", "10.0.0.8"));
            // Banning again restarts the timeout (shorter here).
            b.ban(Cidr::host(v4(7)), Duration::from_secs(20)).unwrap();
            assert!(expires_ms("postern", "ban4", "10.0.0.7") <= 20_000, "{how}");
            // IPv6: a /64 covers every address of it and none outside.
            let a6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 1, 0, 0, 0, 7));
            let net = Cidr::network_of(a6, 64);
            b.ban(net, Duration::from_secs(30)).unwrap();
            let e = elements("postern", "ban6");
            assert!(e.contains("fd00:213:0:1::/64 timeout 30s"), "{how}: {e}");
            assert!(in_ban_set("postern", "ban6", "fd00:213:0:1:abcd::1"));
            assert!(in_ban_set(
                "postern",
                "ban6",
                "fd00:213:0:1:ffff:ffff:ffff:ffff"
            ));
            assert!(!in_ban_set("postern", "ban6", "fd00:213:0:2::7"));
            assert!(!in_ban_set("postern", "ban6", "fd00:213::ffff"));
            // Re-banning the network restarts its timeout too.
            b.ban(net, Duration::from_secs(3600)).unwrap();
            assert!(elements("postern", "ban6").contains("timeout 1h"), "{how}");
            b.ban(net, Duration::from_secs(10)).unwrap();
            assert!(expires_ms("postern", "ban6", "fd00:213:0:1::/64") <= 10_000);
            // A wider or narrower network overlapping a live ban is refused
            // by the interval set, with the reason; the live ban stays.
            for len in [56, 128] {
                let err = b
                    .ban(Cidr::network_of(a6, len), Duration::from_secs(30))
                    .unwrap_err();
                assert!(
                    err.to_string().contains("overlaps a live ban"),
                    "{how}: {err}"
                );
            }
            assert!(in_ban_set("postern", "ban6", "fd00:213:0:1::7"), "{how}");
            // A neighbouring /64 is a separate ban (adjacent intervals).
            let next = Cidr::network_of(
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 2, 0, 0, 0, 1)),
                64,
            );
            b.ban(next, Duration::from_secs(30)).unwrap();
            assert!(in_ban_set("postern", "ban6", "fd00:213:0:2::7"));
            b.unban(next).unwrap();
            assert!(!in_ban_set("postern", "ban6", "fd00:213:0:2::7"));
            assert!(in_ban_set("postern", "ban6", "fd00:213:0:1::7"), "{how}");
            let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 8).to_ipv6_mapped());
            b.ban(Cidr::host(mapped), Duration::from_secs(30)).unwrap();
            assert!(elements("postern", "ban4").contains("10.0.0.8 timeout 30s"));
            // A reload keeps the bans.
            b.setup(&[PortSpec::tcp(80)]).unwrap();
            assert!(elements("postern", "ban4").contains("10.0.0.7"), "{how}");
            assert!(in_ban_set("postern", "ban6", "fd00:213:0:1::7"), "{how}");
            // A ban is never a rule of its own: it only keeps a grant from accepting.
            let chain = nft("list chain inet postern input");
            assert!(!chain.contains("drop"), "{chain}");
            assert_eq!(chain.matches("@ban4").count(), 1, "{chain}");
            let established = chain.find("ct state established,related accept").unwrap();
            assert!(established < chain.find("@ban4").unwrap(), "{chain}");
            // Unban removes at once; unbanning what is not banned is fine.
            b.unban(Cidr::host(v4(8))).unwrap();
            assert!(!elements("postern", "ban4").contains("10.0.0.8"));
            b.unban(Cidr::host(v4(8))).unwrap();
            b.unban(net).unwrap();
            assert!(!in_ban_set("postern", "ban6", "fd00:213:0:1::7"), "{how}");
            // Short bans run out in the kernel.
            b.ban(Cidr::host(v4(9)), Duration::from_millis(300))
                .unwrap();
            b.ban(next, Duration::from_millis(300)).unwrap();
            std::thread::sleep(Duration::from_millis(1200));
            assert!(!in_ban_set("postern", "ban4", "10.0.0.9"), "{how}");
            assert!(!in_ban_set("postern", "ban6", "fd00:213:0:2::7"), "{how}");
            b.teardown().unwrap();
        }
    });
}

/// A table left by an older postern (ban sets of single addresses, a drop
/// rule for them) is rebuilt instead of failing the start.
#[test]
fn standalone_setup_rebuilds_a_table_of_an_older_version() {
    in_netns("old standalone table", || {
        for mut b in [
            NftBackend::standalone(),
            NftBackend::standalone_over_netlink(),
        ] {
            nft_script(
                "add table inet postern\n\
                 add set inet postern ban4 { type ipv4_addr; flags timeout; }\n\
                 add chain inet postern input { type filter hook input priority filter - 5; policy accept; }\n\
                 add rule inet postern input ip saddr @ban4 drop\n",
            );
            b.setup(&[PortSpec::tcp(22)]).unwrap();
            let table = nft("list table inet postern");
            assert!(table.contains("flags interval,timeout"), "{table}");
            assert!(!table.contains("drop"), "{table}");
            b.teardown().unwrap();
        }
    });
}

#[test]
fn fw4_bans_with_the_shipped_includes() {
    in_netns("fw4 bans", || {
        nft_script(&fw4_like());
        let mut b = NftBackend::fw4();
        b.setup(&[]).unwrap();
        b.ban(Cidr::host(v4(7)), Duration::from_secs(60)).unwrap();
        assert!(elements("fw4", "postern_ban4").contains("10.0.0.7 timeout 1m"));
        let a6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 7));
        b.ban(Cidr::network_of(a6, 56), Duration::from_secs(60))
            .unwrap();
        assert!(in_ban_set("fw4", "postern_ban6", "2001:db8:0:ff::1"));
        assert!(!in_ban_set("fw4", "postern_ban6", "2001:db8:0:100::1"));
        // The ban only keeps the grant accepts from taking the source: the
        // only drop is the guard's, for devices of a dropping zone.
        let listed = nft("list chain inet fw4 postern_input");
        assert_eq!(listed.matches(" drop").count(), 1, "{listed}");
        assert!(listed.contains("@postern_guard iifname @postern_drop_devices counter"));
        assert!(
            listed.contains("ip saddr . meta l4proto . th dport @postern_allow4 ip saddr != @postern_ban4 counter"),
            "{listed}"
        );
        // An older include without the ban sets: bans fail clearly.
        nft_script("delete table inet fw4");
        nft_script(FW4_OLD);
        let err = b
            .ban(Cidr::host(v4(7)), Duration::from_secs(60))
            .unwrap_err();
        assert_eq!(
            err.context, "add 10.0.0.7/32 in inet fw4 postern_ban4",
            "{err}"
        );
    });
}

#[test]
fn standalone_setup_is_one_transaction_and_reports_the_kernels_refusal() {
    in_netns("standalone setup refused", || {
        // A foreign regular chain `input`: postern's base chain of that name
        // is refused (EOPNOTSUPP), so nothing of the batch may be committed.
        // (A set of another type, EEXIST, is taken for an older version's
        // table and rebuilt: see standalone_setup_rebuilds_a_table_of_an_older_version.)
        nft_script("add table inet postern\nadd chain inet postern input\n");
        let mut b = NftBackend::standalone_over_netlink();
        let err = b.setup(&[PortSpec::tcp(22)]).unwrap_err();
        assert_eq!(err.context, "set up table inet postern", "{err}");
        assert!(err.source.raw_os_error().is_some(), "{err}");
        let table = nft("list table inet postern");
        assert!(!table.contains("allow4"), "half a batch committed: {table}");
        assert!(!table.contains("hook input"), "{table}");
        // Once the conflict is gone, setup works and the socket is still usable.
        nft_script("delete table inet postern\n");
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        assert!(nft("list table inet postern").contains("@guard reject"));
        b.teardown().unwrap();
        assert!(!nft("list tables").contains("postern"));
    });
}

/// The element lines of `nft list map inet TABLE MAP`, joined.
fn map_elements(table: &str, map: &str) -> String {
    let text = nft(&format!("list map inet {table} {map}"));
    match text.split_once("elements = {") {
        Some((_, rest)) => rest.split('}').next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

fn fwd_spec() -> postern::firewall::ForwardSpec {
    postern::firewall::ForwardSpec {
        proto: postern::port::L4Proto::Tcp,
        port: 8080,
        to4: Some(Ipv4Addr::new(10, 213, 1, 2)),
        to6: None,
        to_port: 80,
    }
}

fn fwd(src: IpAddr, secs: u64) -> postern::firewall::ForwardGrant {
    postern::firewall::ForwardGrant {
        src,
        spec: fwd_spec(),
        timeout: Duration::from_millis(secs),
    }
}

#[test]
fn standalone_forwards_setup_grant_regrant_unforward() {
    in_netns("standalone forwards", || {
        let mut b = NftBackend::standalone();
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        b.setup_forwards(&[fwd_spec()]).unwrap();
        b.setup_forwards(&[fwd_spec()]).unwrap();
        let table = nft("list table inet postern");
        assert!(
            table.contains("type nat hook prerouting priority dstnat - 5"),
            "{table}"
        );
        assert!(
            table.contains("dnat ip to ip saddr . meta l4proto . th dport map @fwd4"),
            "{table}"
        );
        assert_eq!(table.matches("@fwd_guard4 drop").count(), 1, "{table}");
        assert!(elements("postern", "fwd_guard4").contains("10.213.1.2 . tcp . 80"));

        b.forward(&fwd(v4(2), 30_000)).unwrap();
        let m = map_elements("postern", "fwd4");
        assert!(
            m.contains("10.0.0.2 . tcp . 8080 timeout 30s expires"),
            "{m}"
        );
        assert!(m.contains(": 10.213.1.2 . 80"), "{m}");
        let a = elements("postern", "fwd_allow4");
        assert!(
            a.contains("10.0.0.2 . 10.213.1.2 . tcp . 80 timeout 30s"),
            "{a}"
        );
        // Re-granting restarts both timeouts (here with a longer one).
        b.forward(&fwd(v4(2), 3_600_000)).unwrap();
        assert!(map_elements("postern", "fwd4").contains("timeout 1h"));
        assert!(elements("postern", "fwd_allow4").contains("timeout 1h"));
        // Refused: zero timeout, no IPv6 target (nothing changes).
        let err = b.forward(&fwd(v4(3), 0)).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let a6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 9));
        let err = b.forward(&fwd(a6, 30_000)).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.context.contains("no IPv6 target"), "{err}");
        assert!(!map_elements("postern", "fwd4").contains("10.0.0.3"));

        // Reload with the same spec keeps the grant; unforward removes it.
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        b.setup_forwards(&[fwd_spec()]).unwrap();
        assert!(map_elements("postern", "fwd4").contains("10.0.0.2"));
        b.unforward(v4(2), &fwd_spec()).unwrap();
        assert!(map_elements("postern", "fwd4").is_empty());
        assert!(elements("postern", "fwd_allow4").is_empty());
        b.unforward(v4(2), &fwd_spec()).expect("absent is fine");

        // A changed spec ends the grants of the old one.
        b.forward(&fwd(v4(4), 30_000)).unwrap();
        let moved = postern::firewall::ForwardSpec {
            to_port: 81,
            ..fwd_spec()
        };
        b.setup_forwards(&[moved]).unwrap();
        assert!(map_elements("postern", "fwd4").is_empty());
        assert!(elements("postern", "fwd_guard4").contains("10.213.1.2 . tcp . 81"));
        // No forwards: the forward objects go.
        b.setup_forwards(&[]).unwrap();
        let table = nft("list table inet postern");
        assert!(
            !table.contains("fwd") && !table.contains("dstnat"),
            "{table}"
        );
        assert!(table.contains("@guard reject"), "{table}");
        b.teardown().unwrap();
        assert!(!nft("list tables").contains("postern"));
    });
}

#[test]
fn forwards_over_netlink_setup_need_the_nft_tool() {
    in_netns("forwards without nft", || {
        let mut b = NftBackend::standalone_over_netlink();
        b.setup(&[]).unwrap();
        b.setup_forwards(&[]).expect("no forwards: fine");
        let err = b.setup_forwards(&[fwd_spec()]).unwrap_err();
        assert!(
            err.to_string().contains("forwards need the nft tool"),
            "{err}"
        );
        b.teardown().unwrap();
    });
}

#[test]
fn fw4_forwards_with_the_shipped_includes() {
    in_netns("fw4 forwards", || {
        let mut b = NftBackend::fw4();
        // An older include without the forward objects: a clear refusal.
        nft_script(FW4_OLD);
        b.setup_forwards(&[]).expect("no forwards need no objects");
        let err = b.setup_forwards(&[fwd_spec()]).unwrap_err();
        assert!(
            err.context.contains("fw4 set postern_fwd4 missing"),
            "{err}"
        );
        assert!(err.context.contains("table-pre/20-postern.nft"), "{err}");
        nft_script("delete table inet fw4");
        nft_script(&fw4_like());
        b.setup(&[]).unwrap();
        b.setup_forwards(&[fwd_spec()]).unwrap();
        // The forward target is closed to sources without a grant.
        assert!(elements("fw4", "postern_fwd_guard4").contains("10.213.1.2 . tcp . 80"));
        b.forward(&fwd(v4(2), 30_000)).unwrap();
        let m = map_elements("fw4", "postern_fwd4");
        assert!(
            m.contains("10.0.0.2 . tcp . 8080 timeout 30s expires")
                && m.contains(": 10.213.1.2 . 80"),
            "{m}"
        );
        assert!(elements("fw4", "postern_fwd_allow4").contains("10.0.0.2 . 10.213.1.2 . tcp . 80"));
        let chain = nft("list chain inet fw4 postern_dstnat");
        assert!(
            chain.contains("dnat ip to ip saddr . meta l4proto . th dport map @postern_fwd4"),
            "{chain}"
        );
        b.unforward(v4(2), &fwd_spec()).unwrap();
        assert!(map_elements("fw4", "postern_fwd4").is_empty());
        assert!(elements("fw4", "postern_fwd_allow4").is_empty());
        b.teardown().unwrap();
    });
}
