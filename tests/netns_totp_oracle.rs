//! TOTP knocks give an attacker no oracle, end to end on a real kernel:
//! network namespaces (router, client, and an attacker on a second link),
//! nftables, the real daemon binary with a TOTP sequence and the default ban
//! settings, `postern knock --totp`.
//!
//! - Wrong in-range knocks, many more than `ban_threshold`, ban nothing (no
//!   element in the kernel's ban set, none in `postern status`): a ban after
//!   wrong knocks and none after right ones told an attacker which were
//!   right. The same address then knocks the right sequence and gets in.
//! - Knock *volume* is what is limited: a flood from many addresses of one
//!   IPv6 /64 uses up that /64's budget (its right sequence is then ignored
//!   like any knock), while a client in another network gets in.
//!
//! Root only. Without root each test prints SKIPPED loudly and passes —
//! except under `CI=true`, where a missing root fails the test.

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern::demo::{self, Lab, ATTACKER_V4, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};
use postern::knock::hmac::HmacKey;
use postern::knock::totp::{self, TotpShape};
use postern::knock::volume::DEFAULT_KNOCK_LIMIT;
use postern::port::L4Proto;
#[path = "support/root.rs"]
mod root;
use root::root_or_skip;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(500);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const BASE: u16 = 40000;

/// A lab with the service and the attacker namespace (tag unique to this process).
fn lab(letter: char) -> Lab {
    let tag = format!("o{letter}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// A TOTP sequence with the default shape; bans with their defaults.
fn config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{}'\n\n\
         config sequence 'otp'\n\toption key '{KEY}'\n\toption knock_base '{BASE}'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '60'\n",
        lab.dir().join("state").display()
    )
}

fn attacker(lab: &Lab) -> String {
    lab.attacker_ns.clone().expect("attacker namespace")
}

/// `postern ARGS...` in namespace `ns`; its stdout.
fn postern_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, EXE])
        .args(args)
        .output()
        .expect("run postern");
    assert!(
        out.status.success(),
        "postern {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `postern knock HOST --totp` (the defaults) from `ns`.
fn knock_totp(ns: &str, host: IpAddr) -> String {
    let host = host.to_string();
    postern_in(
        ns,
        &[
            "knock",
            &host,
            "--totp",
            "--key",
            KEY,
            "--base",
            &BASE.to_string(),
        ],
    )
}

fn open_from(lab: &Lab, ns: &str, addr: IpAddr) -> bool {
    lab.connect_from(ns, addr, DEMO_PORT, PROBE)
        .expect("connect")
        .is_some()
}

/// Elements of the router's ban sets.
fn ban_sets(lab: &Lab) -> String {
    lab.sh_in_router("nft list set inet postern ban4; nft list set inet postern ban6")
        .unwrap_or_default()
}

/// The daemon's status as JSON.
fn status_json(lab: &Lab) -> String {
    lab.status(Path::new(EXE), 0, true).unwrap()
}

/// One counter of a group of the status JSON.
fn counter(json: &str, group: &str, name: &str) -> u64 {
    let g = json
        .find(&format!("\"{group}\":{{"))
        .unwrap_or_else(|| panic!("no group {group}: {json}"));
    let rest = &json[g + group.len() + 3..];
    let end = rest.find('}').unwrap();
    let key = format!("\"{name}\":");
    let at = rest[..end]
        .find(&key)
        .unwrap_or_else(|| panic!("no {group}.{name}: {json}"));
    rest[at + key.len()..end]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the wall clock is not within `margin` s of a 30 s step boundary.
fn away_from_step_boundary(margin: u64) {
    loop {
        let into = postern::time::unix_now() % 30;
        if into >= margin && into + margin < 30 {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn shape() -> TotpShape {
    TotpShape {
        proto: L4Proto::Tcp,
        base: BASE,
        range: totp::DEFAULT_RANGE,
        length: totp::DEFAULT_LENGTH,
        period: totp::DEFAULT_PERIOD,
    }
}

/// `n` ports of the first band that are no first knock of the steps around now.
fn wrong_first_knocks(n: usize) -> Vec<u16> {
    let key = HmacKey::new(postern::spa::Key::from_base64(KEY).unwrap().as_bytes());
    let s = shape();
    let now = s.step_at(postern::time::unix_now());
    let right: Vec<u16> = (now - 2..=now + 2)
        .map(|step| totp::sequence(&key, &s, step)[0])
        .collect();
    (BASE..BASE + s.band())
        .step_by(7)
        .filter(|p| !right.contains(p))
        .take(n)
        .collect()
}

#[test]
fn wrong_totp_knocks_ban_nothing_and_the_right_sequence_still_opens() {
    if !root_or_skip("wrong_totp_knocks_ban_nothing_and_the_right_sequence_still_opens") {
        return;
    }
    let mut lab = lab('w');
    lab.start_daemon(Path::new(EXE), &config(&lab), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x = IpAddr::V4(ROUTER_X_V4);
    assert!(!open_from(&lab, &x, router_x), "guarded before any knock");

    // Four times the ban threshold (10) of wrong in-range knocks, one address.
    let threshold = postern::bans::DEFAULT_BAN_THRESHOLD as usize;
    let wrong = wrong_first_knocks(4 * threshold);
    let mut args = vec!["knock".to_string(), router_x.to_string()];
    args.extend(wrong.iter().map(|p| format!("tcp:{p}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    postern_in(&x, &args);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let json = loop {
        let json = status_json(&lab);
        if counter(&json, "totp", "wrong") >= wrong.len() as u64 {
            break json;
        }
        assert!(std::time::Instant::now() < end, "knocks not seen: {json}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Not banned: not in the kernel, not in the status, no failure counted.
    assert!(json.contains("\"bans\":[]"), "{json}");
    assert_eq!(counter(&json, "bans", "failures"), 0, "{json}");
    assert_eq!(counter(&json, "bans", "bans"), 0, "{json}");
    assert_eq!(counter(&json, "knock_volume", "limited"), 0, "{json}");
    let sets = ban_sets(&lab);
    assert!(
        !sets.contains(&ATTACKER_V4.to_string()) && !sets.contains("elements"),
        "{sets}"
    );
    let log = lab.daemon(0).log().join("\n");
    assert!(!log.contains(&format!("banned {ATTACKER_V4}")), "{log}");

    // The same address knocks the right sequence: it gets in.
    away_from_step_boundary(3);
    let out = knock_totp(&x, router_x);
    assert!(out.contains("sent 6 knocks"), "{out}");
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {ATTACKER_V4}"));
    assert!(open_from(&lab, &x, router_x));
}

/// Adds `n` addresses of the attacker's /64 (fd00:213:1::/64) to its link.
fn add_attacker_addresses(lab: &Lab, n: u16) -> Vec<Ipv6Addr> {
    let x = attacker(lab);
    let dev = format!("px{}", &lab.router_dev[2..]);
    (1..=n)
        .map(|i| {
            let a = Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0xbad, 0, 0, i);
            let out = Command::new("ip")
                .args([
                    "-n",
                    &x,
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/64"),
                    "dev",
                    &dev,
                ])
                .arg("nodad")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ip addr add {a}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            a
        })
        .collect()
}

/// One TCP SYN from `src` to `dst`:`port` (a non-blocking connect, then close).
fn syn(src: Ipv6Addr, dst: Ipv6Addr, port: u16) {
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr is a
    // fully initialised sockaddr_in6 of the right length.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET6,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let addr = |ip: Ipv6Addr, port: u16| {
            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = port.to_be();
            sa.sin6_addr.s6_addr = ip.octets();
            sa
        };
        let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let local = addr(src, 0);
        let rc = libc::bind(fd, (&local as *const libc::sockaddr_in6).cast(), len);
        assert_eq!(rc, 0, "bind {src}: {}", std::io::Error::last_os_error());
        let remote = addr(dst, port);
        // EINPROGRESS: the SYN is on its way.
        libc::connect(fd, (&remote as *const libc::sockaddr_in6).cast(), len);
        libc::close(fd);
    }
}

#[test]
fn a_flood_from_one_slash64_is_limited_without_touching_other_networks() {
    if !root_or_skip("a_flood_from_one_slash64_is_limited_without_touching_other_networks") {
        return;
    }
    let mut lab = lab('f');
    lab.start_daemon(Path::new(EXE), &config(&lab), None)
        .unwrap();
    let x = attacker(&lab);
    let router_x6 = IpAddr::V6(demo::ROUTER_X_V6);

    // Fresh addresses of one /64, each well under the limit on its own,
    // together over it: 30 addresses x 10 in-range knocks.
    let limit = u64::from(DEFAULT_KNOCK_LIMIT);
    let sources = add_attacker_addresses(&lab, 30);
    let ports = wrong_first_knocks(10);
    let dst = demo::ROUTER_X_V6;
    demo::in_netns(&x, move || {
        for src in &sources {
            for &p in &ports {
                syn(*src, dst, p);
            }
        }
    })
    .unwrap();
    let sent = 300u64;
    assert!(sent > limit);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let json = loop {
        let json = status_json(&lab);
        if counter(&json, "knock_volume", "knocks") >= sent {
            break json;
        }
        assert!(std::time::Instant::now() < end, "knocks not seen: {json}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Exactly the limit went on to the matcher; the rest was counted and ignored.
    let knocks = counter(&json, "knock_volume", "knocks");
    assert_eq!(
        counter(&json, "knock_volume", "networks_limited"),
        1,
        "{json}"
    );
    assert_eq!(
        counter(&json, "knock_volume", "limited"),
        knocks - limit,
        "{json}"
    );
    assert_eq!(counter(&json, "totp", "knocks"), limit, "{json}");
    assert!(json.contains("\"bans\":[]"), "{json}");

    // Yet another address of that /64 knocks the right sequence: ignored,
    // like any knock from it until its window ends.
    away_from_step_boundary(4);
    knock_totp(&x, router_x6);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!open_from(&lab, &x, router_x6), "the limited /64 got in");
    let json = status_json(&lab);
    assert!(
        counter(&json, "knock_volume", "limited")
            >= knocks - limit + u64::from(totp::DEFAULT_LENGTH),
        "{json}"
    );
    assert_eq!(counter(&json, "totp", "knocks"), limit, "{json}");

    // A client in another network is not affected (and the step was not
    // used up by the ignored attempt).
    let out = knock_totp(&lab.client_ns, IpAddr::V4(ROUTER_V4));
    assert!(out.contains("sent 6 knocks"), "{out}");
    lab.daemons_wait(&format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}"));
    assert!(open_from(&lab, &lab.client_ns, IpAddr::V4(ROUTER_V4)));
    assert!(
        ban_sets(&lab).find("elements").is_none(),
        "{}",
        ban_sets(&lab)
    );
}
