//! Spoofed floods on a real kernel while a legitimate client keeps getting
//! in: network namespaces (router, client, attacker), nftables, the real
//! daemon binary. The attacker namespace sends raw IPv4 packets with random
//! spoofed sources (100.64.0.0/10, never a lab address) to the router:
//!
//! - (a) first-step knocks (TCP SYNs to the sequence's first port) while
//!   the client knocks the sequence with `postern knock`;
//! - (b) random bytes of native SPA length (75–296) to the SPA port while
//!   the client sends native SPA with `postern spa`;
//! - (c) valid-looking but unauthenticated fwknop packets (base64 text of a
//!   real packet's length) while the real `fwknop` client sends SPA.
//!
//! Each flood is bounded ([`MAX_FLOOD`] packets at most [`FLOOD_RATE`] per
//! second) and runs through all [`ATTEMPTS`] legitimate attempts, each of
//! which must open the port (daemon log and a TCP connect). The daemon's
//! peak resident memory (`VmHWM`) may grow only by what its fixed tables
//! explain ([`HWM_GROWTH_BOUND`]). The figures go to stderr.
//!
//! Bans stay on with their defaults (10 failures in 60 s): every spoofed
//! source is random and fails at most a few times, and the legitimate
//! client never fails, so nothing bans it (asserted). The SPA floods run
//! with `spa_verify_budget` at its maximum so that every fwknop-shaped junk
//! packet costs the full verification (one HMAC per candidate client: the
//! worst case for CPU and memory); native junk stops at the keyed pre-filter
//! whatever the budget (32 clients at default settings:
//! `tests/netns_spa_flood2.rs`).
//!
//! Root only (and `fwknop` for (c)). Without them each test prints SKIPPED
//! loudly and passes — except under `CI=true`, where they must run.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postern::demo::{self, Lab, CLIENT_V4, DEMO_PORT, ROUTER_V4, ROUTER_X_V4};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const PROBE: Duration = Duration::from_millis(700);
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// fwknop keys (`fwknop --key-gen`).
const FKEY: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
const FHMAC: &str =
    "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
const SPA_PORT: u16 = 62201;
const SEQUENCE: [&str; 3] = ["tcp:7000", "udp:8000", "tcp:9000"];
/// Legitimate attempts per flood; every one must succeed.
const ATTEMPTS: usize = 10;
/// Most packets one flood sends.
const MAX_FLOOD: usize = 40_000;
/// Flood packets sent before the first legitimate attempt (the knock table,
/// 4096 entries, is full by then).
const WARM_UP: usize = 6_000;
/// Packets per second, at most (sent in bursts of [`BURST`]).
const FLOOD_RATE: usize = 20_000;
const BURST: usize = 100;
/// Between two legitimate attempts.
const PAUSE: Duration = Duration::from_millis(100);
/// How much the daemon's peak RSS may grow under a flood. Its per-packet
/// state lives in fixed tables sized at compile time — the knock table
/// (4096 entries of at most 40 bytes plus an 8192-slot index and a
/// 4096-entry first-step queue: under 250 KiB), the ban table (512
/// sources), the SPA replay cache (1024 nonces), the grant table (1024) —
/// reserved but untouched (not resident) at start; a flood touches them.
/// Their sum is under 512 KiB; the rest of the bound is slack for the
/// allocator and the stack. A per-packet allocation or an unbounded table
/// would blow through it within the flood ([`MAX_FLOOD`] packets).
const HWM_GROWTH_BOUND_KB: u64 = 1024;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when the test may run; prints SKIPPED (or fails under CI) otherwise.
fn ready_or_skip(test: &str, needs_fwknop: bool) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let fwknop = !needs_fwknop || Command::new("fwknop").arg("--version").output().is_ok();
    if root && fwknop {
        return true;
    }
    let why = if root {
        "needs the fwknop client (apt-get install fwknop-client)"
    } else {
        "needs root (network namespaces, nftables, raw sockets). Run: sudo -E cargo test"
    };
    assert!(
        !in_ci(),
        "{test}: {why}, and CI=true: these tests must run in CI"
    );
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

fn lab(letter: char) -> Lab {
    let tag = format!("fl{letter}{}", std::process::id() % 100_000);
    let mut lab = Lab::new(&tag).unwrap();
    lab.add_attacker().unwrap();
    lab.serve_tcp(DEMO_PORT).unwrap();
    lab
}

/// The demo sequence, a native and an fwknop SPA client, the maximal
/// verification budget, default bans.
fn config(lab: &Lab) -> String {
    format!(
        "config postern 'main'\n\toption backend 'nft'\n\toption log_level 'info'\n\toption state_dir '{}'\n\
         \toption spa_verify_budget '1000000'\n\n\
         config sequence 'service'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\
         \tlist open 'tcp:{DEMO_PORT}'\n\toption duration '30'\n\n\
         config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{DEMO_PORT}'\n\n\
         config client 'phone'\n\toption fwknop_key '{FKEY}'\n\toption fwknop_hmac_key '{FHMAC}'\n\
         \tlist allow 'tcp:{DEMO_PORT}'\n",
        lab.dir().join("state").display()
    )
}

/// `VmHWM` of `pid`, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// What a flood sends.
#[derive(Clone, Copy, Debug)]
enum Flood {
    /// TCP SYNs to tcp:7000.
    FirstKnocks,
    /// Random bytes of native SPA length to the SPA port.
    JunkSpa,
    /// Random base64 text of an fwknop packet's length to the SPA port.
    FwknopShaped,
}

/// A flood running in the attacker namespace.
struct Running {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Stops the flood; returns how many packets it sent.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("flood thread");
        }
        self.sent()
    }
}

/// A small xorshift generator (no crate; quality is irrelevant here).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random source in 100.64.0.0/10 (shared address space: never a lab address).
fn spoofed(rng: &mut Rng) -> [u8; 4] {
    (0x6440_0000u32 | (rng.next() as u32 & 0x003f_ffff)).to_be_bytes()
}

fn build(kind: Flood, rng: &mut Rng, dst: [u8; 4]) -> Vec<u8> {
    let src = spoofed(rng);
    let sport = 1024 + rng.below(60_000) as u16;
    match kind {
        Flood::FirstKnocks => ipv4_tcp_syn(src, dst, sport, 7000),
        Flood::JunkSpa => {
            let len = 75 + rng.below(296 - 75 + 1) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            ipv4_udp(src, dst, sport, SPA_PORT, &payload)
        }
        Flood::FwknopShaped => {
            // A Rijndael + SHA-256 HMAC fwknop packet is base64 without
            // padding, about 180-260 characters (the HMAC is the last 43).
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let len = 180 + rng.below(81) as usize;
            let payload: Vec<u8> = (0..len).map(|_| ALPHABET[rng.below(64) as usize]).collect();
            ipv4_udp(src, dst, sport, SPA_PORT, &payload)
        }
    }
}

/// Starts `kind` from the attacker namespace to the router's attacker-side
/// address: raw IPv4 (`IPPROTO_RAW`, the header is ours), bursts of
/// [`BURST`] at most [`FLOOD_RATE`] per second, until stopped or
/// [`MAX_FLOOD`] are sent.
fn start_flood(lab: &Lab, kind: Flood) -> Running {
    let ns = lab.attacker_ns.clone().expect("attacker namespace");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let (stop2, sent2) = (stop.clone(), sent.clone());
    let thread = std::thread::spawn(move || {
        demo::in_netns(&ns, move || flood(kind, &stop2, &sent2))
            .expect("flood in the attacker namespace");
    });
    Running {
        stop,
        sent,
        thread: Some(thread),
    }
}

fn flood(kind: Flood, stop: &AtomicBool, sent: &AtomicUsize) {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let dst = ROUTER_X_V4.octets();
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst),
        },
        sin_zero: [0; 8],
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let burst_time = Duration::from_secs_f64(BURST as f64 / FLOOD_RATE as f64);
    let mut n = 0;
    while n < MAX_FLOOD && !stop.load(Ordering::SeqCst) {
        let began = Instant::now();
        for _ in 0..BURST {
            let p = build(kind, &mut rng, dst);
            // SAFETY: sendto(2) with a valid buffer and address.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&addr as *const libc::sockaddr_in).cast(),
                    core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if rc == p.len() as isize {
                n += 1;
            }
        }
        sent.store(n, Ordering::SeqCst);
        if let Some(rest) = burst_time.checked_sub(began.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
}

/// An IPv4 + TCP SYN with correct checksums.
fn ipv4_tcp_syn(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // seq
    l4.extend_from_slice(&0u32.to_be_bytes()); // ack
    l4.extend_from_slice(&[5 << 4, 0x02]); // data offset 20, SYN
    l4.extend_from_slice(&64240u16.to_be_bytes()); // window
    l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let c = l4_checksum(src, dst, 6, &l4);
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 6, &l4)
}

/// An IPv4 + UDP datagram with correct checksums.
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    let c = match l4_checksum(src, dst, 17, &l4) {
        0 => 0xffff,
        c => c,
    };
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 17, &l4)
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = fold(sum16(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let mut acc = sum16(&src, 0);
    acc = sum16(&dst, acc);
    acc += u32::from(proto) + l4.len() as u32;
    fold(sum16(l4, acc))
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn opened(lab: &mut Lab) -> usize {
    let line = format!("opened tcp:{DEMO_PORT} for {CLIENT_V4}");
    lab.daemon(0)
        .log()
        .iter()
        .filter(|l| l.contains(&line))
        .count()
}

/// Runs one legitimate client attempt in the client namespace.
fn attempt(lab: &Lab, kind: Flood) {
    let router = ROUTER_V4.to_string();
    let port = format!("tcp/{DEMO_PORT}");
    let home = format!("HOME={}", lab.dir().display());
    let args: Vec<&str> = match kind {
        Flood::FirstKnocks => vec![EXE, "knock", &router, SEQUENCE[0], SEQUENCE[1], SEQUENCE[2]],
        Flood::JunkSpa => vec![EXE, "spa", &router, "-A", &port, "--key", KEY],
        Flood::FwknopShaped => vec![
            "env",
            &home,
            "fwknop",
            "--no-rc-file",
            "--no-save-args",
            "-A",
            &port,
            "--use-hmac",
            "--key-base64-rijndael",
            FKEY,
            "--key-base64-hmac",
            FHMAC,
            "-s",
            "-D",
            &router,
        ],
    };
    let out = lab.run_in_client(&args).expect("run the client");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One flood of `kind` with [`ATTEMPTS`] legitimate attempts through it.
fn flood_while_client_gets_in(letter: char, kind: Flood) {
    let mut lab = lab(letter);
    let pid = lab
        .start_daemon(Path::new(EXE), &config(&lab), None)
        .unwrap()
        .pid();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "postern"
    );
    // Settle, then the baseline.
    std::thread::sleep(Duration::from_millis(300));
    let hwm_start = vm_hwm_kb(pid);

    let flood = start_flood(&lab, kind);
    let warm = Instant::now() + Duration::from_secs(10);
    while flood.sent() < WARM_UP {
        assert!(Instant::now() < warm, "the flood does not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut successes = 0;
    let mut sent_at = Vec::new();
    for i in 0..ATTEMPTS {
        let before = opened(&mut lab);
        attempt(&lab, kind);
        let end = Instant::now() + Duration::from_secs(5);
        while opened(&mut lab) == before && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let logged = opened(&mut lab) > before;
        let connected = lab
            .connect(IpAddr::V4(ROUTER_V4), DEMO_PORT, PROBE)
            .unwrap()
            .is_some();
        if logged && connected {
            successes += 1;
        } else {
            eprintln!("{kind:?}: attempt {i} failed (logged {logged}, connected {connected})");
        }
        sent_at.push(flood.sent());
        // Spread the attempts over the flood.
        std::thread::sleep(PAUSE);
    }
    let still_flooding = flood.sent() < MAX_FLOOD;
    let sent = flood.finish();
    // Let the daemon read what is queued, then the peak.
    std::thread::sleep(Duration::from_millis(500));
    let hwm_end = vm_hwm_kb(pid);
    let status = lab.status(Path::new(EXE), 0, false).unwrap();
    let counters: Vec<&str> = status
        .lines()
        .filter(|l| {
            ["capture:", "packets:", "knock:", "spa", "bans:", "refused"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    eprintln!(
        "flood {kind:?}: {successes}/{ATTEMPTS} legitimate attempts succeeded; {sent} spoofed packets sent \
         (at the attempts: {sent_at:?}; still flooding after the last: {still_flooding}); \
         VmHWM {hwm_start} kB at start, {hwm_end} kB after (+{} kB, bound {HWM_GROWTH_BOUND_KB} kB)\n  {}",
        hwm_end.saturating_sub(hwm_start),
        counters.join("\n  ")
    );
    assert_eq!(successes, ATTEMPTS, "every legitimate attempt gets in");
    assert!(
        hwm_end <= hwm_start + HWM_GROWTH_BOUND_KB,
        "VmHWM grew from {hwm_start} kB to {hwm_end} kB"
    );
    // The flood reached the daemon: it counted frames from the spoofed sources.
    let frames: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("capture: frames="))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        frames as usize >= WARM_UP,
        "the daemon saw {frames} frames of {sent}:\n{status}"
    );
    let log = lab.daemon(0).log().join("\n");
    assert!(
        !log.contains(&format!("banned {CLIENT_V4}")),
        "the client was banned:\n{log}"
    );
}

#[test]
fn first_knock_flood_from_spoofed_sources_does_not_stop_a_knocking_client() {
    if !ready_or_skip(
        "first_knock_flood_from_spoofed_sources_does_not_stop_a_knocking_client",
        false,
    ) {
        return;
    }
    flood_while_client_gets_in('a', Flood::FirstKnocks);
}

#[test]
fn junk_spa_flood_from_spoofed_sources_does_not_stop_a_native_spa_client() {
    if !ready_or_skip(
        "junk_spa_flood_from_spoofed_sources_does_not_stop_a_native_spa_client",
        false,
    ) {
        return;
    }
    flood_while_client_gets_in('b', Flood::JunkSpa);
}

#[test]
fn fwknop_shaped_flood_does_not_stop_the_real_fwknop_client() {
    if !ready_or_skip(
        "fwknop_shaped_flood_does_not_stop_the_real_fwknop_client",
        true,
    ) {
        return;
    }
    flood_while_client_gets_in('c', Flood::FwknopShaped);
}
