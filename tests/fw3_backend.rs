//! The fw3 (iptables + ipset) backend against the real kernel, each test in a
//! fresh network namespace (the host's sets and rules are never touched).
//!
//! Needs root and the `ipset` and `iptables` tools. Without root each test
//! prints `SKIPPED (needs root)` and passes, unless `CI=true`, where skipping
//! is a failure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern::cidr::Cidr;
use postern::demo::in_new_netns;
use postern::firewall::ipset::{self, Fw3Backend};
use postern::firewall::{Backend, Grant};
use postern::port::PortSpec;

/// True when the test may run; prints SKIPPED loudly (or fails under CI) otherwise.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: needs root, and CI=true forbids skipping"
    );
    // Straight to fd 2: the test harness captures `eprintln!` of passing tests.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (needs root): {test} — run `cargo test --test fw3_backend` as root"
    );
    false
}

/// Runs `f` in a new network namespace (after checking that children inherit it).
fn in_netns(f: impl FnOnce() + Send + 'static) {
    in_new_netns(move || {
        let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let child = sh("readlink /proc/self/ns/net");
        assert_eq!(
            child.trim(),
            mine.to_string_lossy(),
            "spawned children are not in the test netns"
        );
        f()
    })
    .unwrap();
}

/// `sh -c CMD`; panics with its stderr on failure, returns stdout.
fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn include() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openwrt/postern/files/fw3.include")
}

/// fw3's chain layout as far as the include needs it, then the shipped include.
fn fw3_with_include() {
    sh("iptables -N input_wan_rule && ip6tables -N input_wan_rule");
    sh("iptables -N forwarding_wan_rule && ip6tables -N forwarding_wan_rule");
    sh("iptables -t nat -N prerouting_wan_rule");
    sh(&format!("sh {}", include().display()));
}

/// The members of `set`, one per entry, e.g. `10.0.0.2,tcp:22 timeout 29`.
fn members(set: &str) -> Vec<String> {
    let text = sh(&format!("ipset list {set}"));
    text.lines()
        .skip_while(|l| !l.starts_with("Members:"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// Seconds left on `who` in `set` (from `who timeout N`); None if absent.
fn timeout_left(set: &str, who: &str) -> Option<u64> {
    let m = members(set);
    let line = m.iter().find(|l| l.split(' ').next() == Some(who))?;
    let secs = line
        .split("timeout ")
        .nth(1)
        .unwrap_or_else(|| panic!("no timeout in {line:?}"));
    Some(secs.trim().parse().unwrap())
}

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, d))
}

fn grant(addr: IpAddr, port: PortSpec, timeout: Duration) -> Grant {
    Grant {
        addr,
        port,
        timeout,
    }
}

#[test]
fn include_file_uses_the_daemon_set_names() {
    let text = std::fs::read_to_string(include()).unwrap();
    for set in [ipset::SET4, ipset::SET6] {
        assert!(
            text.contains(&format!("create {set} hash:ip,port")),
            "fw3.include does not create {set}"
        );
        assert!(text.contains("timeout 0"), "sets need timeout support");
    }
    assert!(text.contains(
        "-m set --match-set \"postern$f\" src,dst -m set ! --match-set \"postern_ban$f\" src -j ACCEPT"
    ));
    for set in [ipset::GUARD_TCP, ipset::GUARD_UDP] {
        assert!(text.contains(&format!("create {set} bitmap:port")), "{set}");
    }
    for set in [
        ipset::DEVICES4,
        ipset::DEVICES6,
        ipset::DROP_DEVICES4,
        ipset::DROP_DEVICES6,
    ] {
        assert!(
            text.contains(&format!("create {set} hash:net,iface")),
            "{set}"
        );
    }
}

/// The guard sets as the include makes them (for tests that make the
/// grant sets by hand).
fn guard_sets() {
    sh("ipset create postern_guard_tcp bitmap:port range 0-65535");
    sh("ipset create postern_guard_udp bitmap:port range 0-65535");
    for (set, family) in [
        ("postern_devices4", "inet"),
        ("postern_devices6", "inet6"),
        ("postern_drop_devices4", "inet"),
        ("postern_drop_devices6", "inet6"),
    ] {
        sh(&format!(
            "ipset create {set} hash:net,iface family {family}"
        ));
    }
}

#[test]
fn setup_fails_clearly_without_the_include() {
    if !root_or_skip("setup_fails_clearly_without_the_include") {
        return;
    }
    in_netns(|| {
        let mut b = Fw3Backend::new();
        let err = b.setup(&[]).unwrap_err();
        assert_eq!(
            err.context,
            "ipset postern4 missing: is the postern fw3 include installed \
             (firewall include /usr/share/postern/fw3.include, reload 1)?"
        );
        assert_eq!(err.source.raw_os_error(), Some(libc::ENOENT), "{err}");
        // With only the IPv4 set, the IPv6 one is named.
        sh("ipset create postern4 hash:ip,port family inet timeout 0");
        let err = b.setup(&[]).unwrap_err();
        assert!(err.context.starts_with("ipset postern6 missing"), "{err}");
        // Without the guard sets (an older include) setup refuses: a user
        // rule could open a guarded port.
        sh("ipset create postern6 hash:ip,port family inet6 timeout 0");
        let err = b.setup(&[PortSpec::tcp(22)]).unwrap_err();
        assert!(
            err.context.starts_with("ipset postern_guard_tcp missing")
                && err.context.contains("guarded ports would stay open"),
            "{err}"
        );
        // Once all exist, setup succeeds, fills the guard and is repeatable.
        guard_sets();
        b.set_capture(&["veth-x".into()], postern::firewall::GuardVerdict::Reject);
        b.setup(&[PortSpec::tcp(22), PortSpec::udp(53)]).unwrap();
        b.setup(&[PortSpec::tcp(22), PortSpec::udp(53)]).unwrap();
        assert_eq!(members("postern_guard_tcp"), ["22"]);
        assert_eq!(members("postern_guard_udp"), ["53"]);
        assert_eq!(members("postern_devices4"), ["0.0.0.0/0,veth-x"]);
        assert_eq!(members("postern_devices6"), ["::/0,veth-x"]);
        assert!(members("postern_drop_devices4").is_empty());
    });
}

#[test]
fn grant_regrant_revoke_teardown() {
    if !root_or_skip("grant_regrant_revoke_teardown") {
        return;
    }
    in_netns(|| {
        fw3_with_include();
        // The include is idempotent (fw3 runs it on every reload).
        sh(&format!("sh {}", include().display()));
        let rules = sh("iptables -S postern_input");
        assert_eq!(
            rules
                .matches(
                    "--match-set postern4 src,dst -m set ! --match-set postern_ban4 src -j ACCEPT"
                )
                .count(),
            1,
            "{rules}"
        );
        // Without fw3's custom chains the jump sits at the top of INPUT, once.
        let input = sh("iptables -S INPUT");
        assert_eq!(input.matches("-j postern_input").count(), 1, "{input}");
        let mut b = Fw3Backend::new();
        b.setup(&[PortSpec::tcp(22)]).unwrap();
        let who = "10.0.0.2,tcp:22";

        b.grant(&grant(v4(2), PortSpec::tcp(22), Duration::from_secs(30)))
            .unwrap();
        let left = timeout_left("postern4", who).expect("granted");
        assert!((1..=30).contains(&left), "{left}");

        // A re-grant replaces the timeout, shorter or longer.
        b.grant(&grant(v4(2), PortSpec::tcp(22), Duration::from_secs(5)))
            .unwrap();
        assert!(timeout_left("postern4", who).unwrap() <= 5);
        b.grant(&grant(v4(2), PortSpec::tcp(22), Duration::from_secs(300)))
            .unwrap();
        assert!(timeout_left("postern4", who).unwrap() > 100);

        // Another port for the same address is its own element.
        b.grant(&grant(v4(2), PortSpec::udp(53), Duration::from_secs(30)))
            .unwrap();
        assert!(timeout_left("postern4", "10.0.0.2,udp:53").is_some());

        b.revoke(v4(2), PortSpec::tcp(22)).unwrap();
        assert_eq!(timeout_left("postern4", who), None);
        assert!(timeout_left("postern4", "10.0.0.2,udp:53").is_some());
        // Revoking what is not there is fine.
        b.revoke(v4(2), PortSpec::tcp(22)).unwrap();
        b.revoke(v4(9), PortSpec::tcp(1)).unwrap();

        // Teardown leaves fw3's sets (and their elements) alone.
        b.teardown().unwrap();
        assert!(timeout_left("postern4", "10.0.0.2,udp:53").is_some());
        // And the backend works again after teardown (socket reopened).
        b.grant(&grant(v4(3), PortSpec::tcp(22), Duration::from_secs(30)))
            .unwrap();
        assert!(timeout_left("postern4", "10.0.0.3,tcp:22").is_some());
    });
}

#[test]
fn grant_expires_in_the_kernel() {
    if !root_or_skip("grant_expires_in_the_kernel") {
        return;
    }
    in_netns(|| {
        fw3_with_include();
        let mut b = Fw3Backend::new();
        b.setup(&[]).unwrap();
        // 1.2 s rounds up to 2 s: a sub-second part never shortens a grant.
        b.grant(&grant(
            v4(4),
            PortSpec::tcp(22),
            Duration::from_millis(1200),
        ))
        .unwrap();
        let left = timeout_left("postern4", "10.0.0.4,tcp:22").expect("granted");
        assert!((1..=2).contains(&left), "{left}");
        let start = Instant::now();
        while timeout_left("postern4", "10.0.0.4,tcp:22").is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "still there after 10 s: {:?}",
                members("postern4")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Nothing else was touched: the set is still there.
        sh("ipset list -n postern4");
    });
}

#[test]
fn ipv6_and_mapped_addresses() {
    if !root_or_skip("ipv6_and_mapped_addresses") {
        return;
    }
    in_netns(|| {
        fw3_with_include();
        let mut b = Fw3Backend::new();
        b.setup(&[]).unwrap();
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 2));
        b.grant(&grant(v6, PortSpec::udp(8000), Duration::from_secs(30)))
            .unwrap();
        assert!(timeout_left("postern6", "fd00:213::2,udp:8000").is_some());
        assert!(members("postern4").is_empty());
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 5).to_ipv6_mapped());
        b.grant(&grant(mapped, PortSpec::tcp(22), Duration::from_secs(30)))
            .unwrap();
        assert!(timeout_left("postern4", "10.0.0.5,tcp:22").is_some());
        b.revoke(mapped, PortSpec::tcp(22)).unwrap();
        b.revoke(v6, PortSpec::udp(8000)).unwrap();
        assert!(members("postern4").is_empty() && members("postern6").is_empty());
    });
}

#[test]
fn kernel_refusals_are_explained() {
    if !root_or_skip("kernel_refusals_are_explained") {
        return;
    }
    in_netns(|| {
        // Sets made by hand without timeout support: every grant is refused,
        // with the reason spelled out and the element named.
        sh("ipset create postern4 hash:ip,port family inet");
        sh("ipset create postern6 hash:ip,port family inet6");
        guard_sets();
        let mut b = Fw3Backend::new();
        b.setup(&[]).unwrap();
        let err = b
            .grant(&grant(v4(2), PortSpec::tcp(22), Duration::from_secs(30)))
            .unwrap_err();
        assert_eq!(err.context, "add 10.0.0.2,tcp:22 to ipset postern4");
        assert!(
            err.source.to_string().contains("without timeout support"),
            "{err}"
        );
        assert!(members("postern4").is_empty());
        // A zero timeout ("forever") never reaches the kernel.
        sh("ipset destroy postern4 && ipset create postern4 hash:ip,port timeout 0");
        let err = b
            .grant(&grant(v4(2), PortSpec::tcp(22), Duration::ZERO))
            .unwrap_err();
        assert!(err.to_string().contains("zero timeout"), "{err}");
        assert!(members("postern4").is_empty());
    });
}

/// Whether `ipset test SET ADDR` finds `addr` in a network of the set.
fn in_set(set: &str, addr: &str) -> bool {
    Command::new("ipset")
        .args(["test", set, addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A ban is a network in a `hash:net` set that only keeps postern's own
/// accepts (and forward DNAT) from taking it: no rule of the include drops
/// or rejects anything, so a ban cannot cut a source off other services,
/// ICMPv6 or established flows (issue 14 item 1; the old include put
/// `--match-set postern_ban4 src -j DROP` at the top of `input_wan_rule`).
#[test]
fn bans_are_networks_that_only_withhold_postern_accepts() {
    if !root_or_skip("bans_are_networks_that_only_withhold_postern_accepts") {
        return;
    }
    in_netns(|| {
        fw3_with_include();
        sh(&format!("sh {}", include().display()));
        for (tool, ban) in [("iptables", "postern_ban4"), ("ip6tables", "postern_ban6")] {
            for chain in ["postern_input", "forwarding_wan_rule"] {
                let rules = sh(&format!("{tool} -S {chain}"));
                // The only refusals are the guard's (guarded ports, any
                // source without a grant); a ban adds none.
                for l in rules.lines() {
                    if l.contains("DROP") || l.contains("REJECT") {
                        assert!(l.contains("--match-set postern_guard_"), "{rules}");
                        assert!(!l.contains("postern_ban"), "{rules}");
                    }
                }
                let accepts: Vec<&str> =
                    rules.lines().filter(|l| l.contains("-j ACCEPT")).collect();
                assert_eq!(accepts.len(), 1, "{rules}");
                assert!(
                    accepts[0].contains(&format!("-m set ! --match-set {ban} src -j ACCEPT")),
                    "{rules}"
                );
            }
            // The old accept in input_wan_rule is gone.
            assert!(!sh(&format!("{tool} -S input_wan_rule")).contains("ACCEPT"));
        }
        assert!(sh("ipset -t list postern_ban6").contains("Type: hash:net"));

        let mut b = Fw3Backend::new();
        b.setup(&[]).unwrap();
        b.ban(Cidr::host(v4(7)), Duration::from_secs(300)).unwrap();
        let left = timeout_left("postern_ban4", "10.0.0.7").expect("banned");
        assert!((200..=300).contains(&left), "{left}");
        assert!(in_set("postern_ban4", "10.0.0.7") && !in_set("postern_ban4", "10.0.0.6"));
        // Banning again replaces the timeout.
        b.ban(Cidr::host(v4(7)), Duration::from_secs(10)).unwrap();
        assert!(timeout_left("postern_ban4", "10.0.0.7").unwrap() <= 10);
        // An IPv6 ban is a prefix: every address of the /64 is in it, none outside.
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 1, 0, 0, 0, 7));
        let net = Cidr::network_of(v6, 64);
        b.ban(net, Duration::from_secs(30)).unwrap();
        assert!(
            timeout_left("postern_ban6", "fd00:213:0:1::/64").is_some(),
            "{:?}",
            members("postern_ban6")
        );
        assert!(in_set("postern_ban6", "fd00:213:0:1:ffff::99"));
        assert!(!in_set("postern_ban6", "fd00:213:0:2::7"));
        b.ban(net, Duration::from_secs(5)).unwrap();
        assert!(timeout_left("postern_ban6", "fd00:213:0:1::/64").unwrap() <= 5);
        b.unban(net).unwrap();
        assert!(!in_set("postern_ban6", "fd00:213:0:1::7"));
        b.unban(net).unwrap();
        // A mapped address is an IPv4 source.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 8).to_ipv6_mapped());
        b.ban(Cidr::host(mapped), Duration::from_secs(30)).unwrap();
        assert!(timeout_left("postern_ban4", "10.0.0.8").is_some());
        b.unban(Cidr::host(v4(8))).unwrap();
        assert_eq!(timeout_left("postern_ban4", "10.0.0.8"), None);
        b.unban(Cidr::host(v4(8))).unwrap();
    });
}

/// An include of an older version made `hash:ip` ban sets; after fw3 has
/// flushed its rules (every reload does), the include replaces them.
#[test]
fn old_hash_ip_ban_sets_are_replaced() {
    if !root_or_skip("old_hash_ip_ban_sets_are_replaced") {
        return;
    }
    in_netns(|| {
        sh("ipset create postern_ban4 hash:ip family inet timeout 0");
        sh("ipset create postern_ban6 hash:ip family inet6 timeout 0");
        fw3_with_include();
        for set in ["postern_ban4", "postern_ban6"] {
            assert!(
                sh(&format!("ipset -t list {set}")).contains("Type: hash:net"),
                "{set}"
            );
        }
    });
}

#[test]
fn forwards_setup_grant_regrant_unforward() {
    use postern::firewall::{ForwardGrant, ForwardSpec};
    if !root_or_skip("forwards_setup_grant_regrant_unforward") {
        return;
    }
    in_netns(|| {
        let spec = ForwardSpec {
            proto: postern::port::L4Proto::Tcp,
            port: 8080,
            to4: Some(Ipv4Addr::new(10, 213, 1, 2)),
            to6: Some(Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0, 0, 0, 2)),
            to_port: 80,
        };
        let fwd = |src, secs| ForwardGrant {
            src,
            spec,
            timeout: Duration::from_secs(secs),
        };
        let mut b = Fw3Backend::new();
        // Without the include's forward sets: a clear refusal.
        sh("ipset create postern4 hash:ip,port family inet timeout 0");
        sh("ipset create postern6 hash:ip,port family inet6 timeout 0");
        guard_sets();
        b.setup(&[]).unwrap();
        let err = b.setup_forwards(&[spec]).unwrap_err();
        assert!(
            err.context.starts_with("ipset postern_fwd4 missing"),
            "{err}"
        );
        fw3_with_include();
        b.setup_forwards(&[spec]).unwrap();
        b.setup_forwards(&[spec]).unwrap();
        let nat = sh("iptables -t nat -S");
        assert_eq!(
            nat.matches("-A prerouting_wan_rule -j postern_fwd").count(),
            1,
            "{nat}"
        );
        assert!(nat.contains(
            "-A postern_fwd -p tcp -m tcp --dport 8080 -m set --match-set postern_fwd4 src,dst -m set ! --match-set postern_ban4 src -j DNAT --to-destination 10.213.1.2:80"
        ), "{nat}");
        let fw = sh("iptables -S forwarding_wan_rule");
        assert!(
            fw.contains("--match-set postern_fwd_allow4 src,dst,dst -m set ! --match-set postern_ban4 src -j ACCEPT"),
            "{fw}"
        );

        b.forward(&fwd(v4(2), 30)).unwrap();
        assert!(timeout_left("postern_fwd4", "10.0.0.2,tcp:8080").unwrap() <= 30);
        assert!(timeout_left("postern_fwd_allow4", "10.0.0.2,tcp:80,10.213.1.2").is_some());
        // A re-grant replaces the timeouts.
        b.forward(&fwd(v4(2), 300)).unwrap();
        assert!(timeout_left("postern_fwd4", "10.0.0.2,tcp:8080").unwrap() > 100);
        assert!(timeout_left("postern_fwd_allow4", "10.0.0.2,tcp:80,10.213.1.2").unwrap() > 100);
        // IPv6: only the accept.
        let a6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 2));
        b.forward(&fwd(a6, 30)).unwrap();
        assert!(timeout_left("postern_fwd_allow6", "fd00:213::2,tcp:80,fd00:213:1::2").is_some());
        // Refused: zero timeout, missing target of the family.
        let err = b.forward(&fwd(v4(3), 0)).unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let v4_only = ForwardSpec { to6: None, ..spec };
        let err = b
            .forward(&ForwardGrant {
                spec: v4_only,
                ..fwd(a6, 30)
            })
            .unwrap_err();
        assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidInput, "{err}");

        b.unforward(v4(2), &spec).unwrap();
        assert_eq!(timeout_left("postern_fwd4", "10.0.0.2,tcp:8080"), None);
        assert_eq!(
            timeout_left("postern_fwd_allow4", "10.0.0.2,tcp:80,10.213.1.2"),
            None
        );
        b.unforward(v4(2), &spec).expect("absent is fine");
        // Forwards gone from the config: their grants and DNAT rules go.
        b.setup_forwards(&[]).unwrap();
        assert!(members("postern_fwd_allow6").is_empty());
        let nat = sh("iptables -t nat -S postern_fwd");
        assert!(!nat.contains("DNAT"), "{nat}");
    });
}
