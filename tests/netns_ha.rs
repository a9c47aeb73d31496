//! Two routers, one door (issue 19): a VRRP pair of routers, each with the
//! real postern daemon and Debian's real `keepalived`, on a real kernel
//! (network namespaces, nftables).
//!
//! Namespaces (names carry the process id): a switch (a bridge) joins the
//! WAN side of routers `1` and `2`, the SPA client `c`, the knocking client
//! `k` and the attacker `a` (off-link: a /32 address the routers reach by a
//! host route, so bans apply to it). The routers also share a dedicated
//! peer link (postern's `config peer`). keepalived holds the virtual address
//! [`VIP`] on router 1 (priority 150) and moves it to router 2 (100) when
//! router 1's keepalived stops; its `notify_master` runs `postern
//! peer-sync`.
//!
//! The test: the client opens the guarded port through the master with SPA,
//! the knocker with a knock, the attacker gets banned with junk SPA; router
//! 1's keepalived is stopped; within the grants' remaining time new
//! connections of both clients succeed through router 2, a replay of the
//! captured SPA packet to router 2 is refused, and the attacker stays banned
//! there. It prints the time from the failover until the grant works on the
//! new master, and the peer sync latency (grant on router 1 → grant in
//! router 2's table) idle and under a spoofed flood at the peer port.
//!
//! Root only (and `keepalived` installed). Without them the test prints
//! SKIPPED loudly and passes — except under `CI=true`, where it must run.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern::control::{self, Request};
use postern::demo;

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const PEER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PORT: u16 = 2222;
const SPA_PORT: u16 = 62201;
const PEER_PORT: u16 = 62202;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 100);
const KNOCKER: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 101);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const PROBE: Duration = Duration::from_millis(500);
/// Grants last this long: everything after the failover happens well within.
const GRANT_S: u64 = 120;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn ready_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let keepalived = Command::new("keepalived").arg("--version").output().is_ok();
    if root && keepalived {
        return true;
    }
    let why = if root {
        "keepalived is not installed (apt-get install keepalived)"
    } else {
        "needs root (network namespaces, nftables)"
    };
    assert!(
        !in_ci(),
        "{test}: {why}, and CI=true: netns tests must run in CI"
    );
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab: namespaces, processes and files; all removed on drop.
struct Ha {
    tag: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
    flood_stop: Arc<AtomicBool>,
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.flood_stop.store(true, Ordering::SeqCst);
        for (_, c) in &mut self.children {
            // SAFETY: kill(2) on a child we own.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        for (_, c) in &mut self.children {
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in ["s", "c", "k", "a", "1", "2"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ha {
    fn new() -> Ha {
        let tag = format!("{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("postern-ha-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ha = Ha {
            tag,
            dir,
            children: Vec::new(),
            flood_stop: Arc::new(AtomicBool::new(false)),
        };
        ha.build();
        ha
    }

    fn ns(&self, n: &str) -> String {
        format!("pha{}{n}", self.tag)
    }

    fn build(&self) {
        let s = self.ns("s");
        for n in ["s", "c", "k", "a", "1", "2"] {
            let ns = self.ns(n);
            sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        sh(&format!(
            "ip -n {s} link add br0 type bridge && ip -n {s} link set br0 up"
        ));
        let hosts = [
            ("c", "eth0", "10.214.0.100/24"),
            ("k", "eth0", "10.214.0.101/24"),
            ("a", "eth0", "198.51.100.7/32"),
            ("1", "wan", "10.214.0.1/24"),
            ("2", "wan", "10.214.0.2/24"),
        ];
        for (i, (n, dev, addr)) in hosts.iter().enumerate() {
            let ns = self.ns(n);
            sh(&format!(
                "ip link add {dev} netns {ns} type veth peer name p{i} netns {s} && \
                 ip -n {s} link set p{i} master br0 up && \
                 ip -n {ns} addr add {addr} dev {dev} && ip -n {ns} link set {dev} up"
            ));
        }
        // The attacker is off-link for the routers: a host route each way.
        let a = self.ns("a");
        sh(&format!("ip -n {a} route add 10.214.0.0/24 dev eth0"));
        for r in ["1", "2"] {
            let ns = self.ns(r);
            sh(&format!(
                "ip -n {ns} route add {ATTACKER}/32 dev wan && \
                 ip netns exec {ns} sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.wan.rp_filter=0"
            ));
        }
        // The peer link.
        let (r1, r2) = (self.ns("1"), self.ns("2"));
        sh(&format!(
            "ip link add peer netns {r1} type veth peer name peer netns {r2} && \
             ip -n {r1} addr add 10.215.0.1/24 dev peer && ip -n {r1} link set peer up && \
             ip -n {r2} addr add 10.215.0.2/24 dev peer && ip -n {r2} link set peer up"
        ));
        for r in ["1", "2"] {
            self.serve(r);
        }
    }

    /// A TCP service on [`PORT`] in router `r` that greets with its name.
    fn serve(&self, r: &str) {
        let listener = demo::in_netns(&self.ns(r), || {
            TcpListener::bind(("0.0.0.0", PORT)).expect("bind service")
        })
        .unwrap();
        let name = format!("router{r}\n");
        std::thread::spawn(move || {
            for mut s in listener.incoming().map_while(Result::ok) {
                let _ = s.write_all(name.as_bytes());
            }
        });
    }

    fn control(&self, r: &str) -> PathBuf {
        self.dir.join(format!("ctl{r}.sock"))
    }

    fn log_path(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}.log"))
    }

    fn log(&self, what: &str) -> String {
        std::fs::read_to_string(self.log_path(what)).unwrap_or_default()
    }

    /// Waits (at most `secs`) until the log of `what` contains `needle`.
    fn wait_log(&self, what: &str, needle: &str, secs: u64) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !self.log(what).contains(needle) {
            assert!(
                Instant::now() < end,
                "{what} did not log '{needle}' within {secs} s:\n{}",
                self.log(what)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self, what: &str, ns: &str, args: &[&str]) {
        let log = File::create(self.log_path(what)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn");
        self.children.push((what.to_string(), child));
    }

    fn stop(&mut self, what: &str) {
        let i = self.children.iter().position(|(w, _)| w == what).unwrap();
        let (_, mut c) = self.children.remove(i);
        // SAFETY: kill(2) on a child we own.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let _ = c.wait();
    }

    /// Starts postern in router `r` (`other` is the peer's number).
    fn start_postern(&mut self, r: &str, other: &str) {
        // Router 1 has the peer key inline, router 2 in a key_file.
        let key = if r == "1" {
            format!("\toption key '{PEER_KEY}'\n")
        } else {
            let path = self.dir.join("peer.key");
            std::fs::write(&path, format!("{PEER_KEY}\n")).unwrap();
            format!("\toption key_file '{}'\n", path.display())
        };
        let config = format!(
            "config postern 'main'\n\toption backend 'nft'\n\toption state_dir '{state}'\n\
             \tlist device 'wan'\n\toption ban_threshold '3'\n\toption ban_window '60'\n\
             \toption ban_duration '600'\n\n\
             config sequence 'svc'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\
             \tlist knock 'tcp:9000'\n\tlist open 'tcp:{PORT}'\n\toption duration '{GRANT_S}'\n\n\
             config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:{PORT}'\n\
             \toption max_duration '600'\n\n\
             config peer 'twin'\n\toption address '10.215.0.{other}'\n{key}\
             \toption interface 'peer'\n",
            state = self.dir.join(format!("state{r}")).display()
        );
        let path = self.dir.join(format!("postern{r}.conf"));
        std::fs::write(&path, config).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ns = self.ns(r);
        let ctl = self.control(r);
        let (path, ctl) = (path.display().to_string(), ctl.display().to_string());
        self.spawn(
            &format!("postern{r}"),
            &ns,
            &[EXE, "daemon", "-c", &path, "--control", &ctl],
        );
        self.wait_log(&format!("postern{r}"), "ready:", 10);
    }

    /// Starts keepalived in router `r` with `priority`.
    fn start_keepalived(&mut self, r: &str, priority: u8) {
        let ctl = self.control(r).display().to_string();
        let config = format!(
            "global_defs {{\n  router_id r{r}\n  script_user root\n}}\n\
             vrrp_instance door {{\n  state BACKUP\n  interface wan\n  virtual_router_id 51\n\
             \x20 priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24 dev wan\n  }}\n\
             \x20 notify_master \"{EXE} peer-sync -s {ctl}\"\n}}\n"
        );
        let path = self.dir.join(format!("keepalived{r}.conf"));
        std::fs::write(&path, config).unwrap();
        let d = &self.dir;
        let files: Vec<String> = ["pid", "vrrp.pid", "checkers.pid", "bfd.pid"]
            .iter()
            .map(|f| d.join(format!("keepalived{r}.{f}")).display().to_string())
            .collect();
        let ns = self.ns(r);
        let path = path.display().to_string();
        self.spawn(
            &format!("keepalived{r}"),
            &ns,
            &[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "-f",
                &path,
                "-p",
                &files[0],
                "-r",
                &files[1],
                "-c",
                &files[2],
                "-b",
                &files[3],
            ],
        );
    }

    /// True when router `r` holds the virtual address.
    fn holds_vip(&self, r: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns(r), "-4", "addr", "show", "dev", "wan"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/"))
    }

    fn wait_vip(&self, r: &str, secs: u64) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !self.holds_vip(r) {
            assert!(
                Instant::now() < end,
                "router {r} did not take {VIP}:\n{}",
                self.log(&format!("keepalived{r}"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects from namespace `n` (optionally from `src`) to VIP:PORT; the greeting.
    fn connect(&self, n: &str, src: Option<Ipv4Addr>) -> Option<String> {
        demo::in_netns(&self.ns(n), move || connect_to(src, VIP, PROBE)).unwrap()
    }

    fn run_in(&self, n: &str, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(n)])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spa(&self) {
        let port = format!("tcp/{PORT}");
        let vip = VIP.to_string();
        let duration = GRANT_S.to_string();
        self.run_in(
            "c",
            &[
                EXE,
                "spa",
                &vip,
                "-A",
                &port,
                "--key",
                KEY,
                "--duration",
                &duration,
            ],
        );
    }

    fn status(&self, r: &str) -> String {
        control::query(&self.control(r), Request::Json).unwrap_or_default()
    }
}

/// A TCP connection to `to`:[`PORT`] from `src` (bound) or any address.
fn connect_to(src: Option<Ipv4Addr>, to: Ipv4Addr, timeout: Duration) -> Option<String> {
    use std::os::fd::FromRawFd as _;
    let stream = match src {
        None => TcpStream::connect_timeout(&SocketAddr::new(IpAddr::V4(to), PORT), timeout).ok()?,
        Some(src) => {
            // std cannot bind before connect: a raw socket, bound, then
            // connected with a timeout via non-blocking connect + poll.
            // SAFETY: plain socket calls on a descriptor we own.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0);
                let stream = TcpStream::from_raw_fd(fd);
                let sin = |a: Ipv4Addr, port: u16| libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(a).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let local = sin(src, 0);
                if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
                    return None;
                }
                stream.set_nonblocking(true).ok()?;
                let remote = sin(to, PORT);
                libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                if libc::poll(&mut p, 1, timeout.as_millis() as i32) != 1 {
                    return None;
                }
                if stream.take_error().ok()?.is_some() || stream.peer_addr().is_err() {
                    return None;
                }
                stream.set_nonblocking(false).ok()?;
                stream
            }
        }
    };
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim_end().to_string())
}

/// A sniffer for UDP to the SPA port on router `r`'s WAN.
fn sniff_spa(ha: &Ha, r: &str) -> postern::capture::Capture {
    use postern::capture::{bpf, Capture};
    use postern::port::PortSpec;
    demo::in_netns(&ha.ns(r), || {
        Capture::open("wan", &bpf::build(&[PortSpec::udp(SPA_PORT)], true))
    })
    .unwrap()
    .unwrap()
}

/// The UDP payload of the next SPA packet the sniffer saw (at most 3 s).
fn sniffed_payload(cap: &postern::capture::Capture) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(frame) = cap.recv(&mut buf).unwrap() {
            if let Ok(obs) = postern::wire::observe(frame.data, frame.checksums) {
                if obs.dst_port == SPA_PORT {
                    return obs.payload.to_vec();
                }
            }
        }
        assert!(Instant::now() < end, "no SPA packet seen on the wire");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `payload` from namespace `n` (from `src` if given) to `to`.
fn send_udp(
    ha: &Ha,
    n: &str,
    src: Option<Ipv4Addr>,
    payload: Vec<u8>,
    to: SocketAddr,
    count: usize,
) {
    demo::in_netns(&ha.ns(n), move || {
        let bind = SocketAddr::new(IpAddr::V4(src.unwrap_or(Ipv4Addr::UNSPECIFIED)), 0);
        let s = UdpSocket::bind(bind).unwrap();
        for _ in 0..count {
            s.send_to(&payload, to).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .unwrap();
}

/// True when router `r`'s status lists a live grant of [`PORT`] to `addr`.
fn has_grant(ha: &Ha, r: &str, addr: Ipv4Addr) -> bool {
    ha.status(r)
        .contains(&format!("{{\"addr\":\"{addr}\",\"port\":\"tcp:{PORT}\""))
}

fn has_ban(ha: &Ha, r: &str, addr: Ipv4Addr) -> bool {
    let s = ha.status(r);
    s.split("\"bans\":[").nth(1).is_some_and(|b| {
        b.split(']')
            .next()
            .unwrap_or("")
            .contains(&format!("\"{addr}\""))
    })
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// An IPv4/UDP packet from `src` to `dst` (checksums filled in).
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut p = vec![0u8; 20 + udp_len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let ip_sum = !fold(sum(&p[..20], 0));
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let s = !fold(sum(&p[20..], sum(&pseudo, 0)));
    p[26..28].copy_from_slice(&(if s == 0 { 0xffff } else { s }).to_be_bytes());
    p
}

fn sum(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Floods router 2's peer port (at `dst`) from namespace `n` with forged
/// datagrams whose source is router 1's peer address (random bytes of peer
/// datagram sizes, version byte right), `rate` a second, until the lab's
/// flood stop is set.
fn start_peer_flood(ha: &Ha, n: &str, dst: Ipv4Addr, rate: usize, sent: Arc<AtomicUsize>) {
    ha.flood_stop.store(false, Ordering::SeqCst);
    let stop = ha.flood_stop.clone();
    let ns = ha.ns(n);
    std::thread::spawn(move || {
        demo::in_netns(&ns, move || {
            // SAFETY: a raw IPv4 socket; we write whole IP headers.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "raw socket");
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(dst).to_be(),
                },
                sin_zero: [0; 8],
            };
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let burst = 20;
            let pause = Duration::from_secs_f64(burst as f64 / rate as f64);
            while !stop.load(Ordering::SeqCst) {
                for _ in 0..burst {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let len = 50 + (x % 400) as usize;
                    let payload: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
                    let mut payload = payload;
                    payload[0] = 1; // the version byte: only the tag can refuse it
                    let pkt = ipv4_udp(
                        [10, 215, 0, 1],
                        [10, 214, 0, 2],
                        PEER_PORT,
                        PEER_PORT,
                        &payload,
                    );
                    // SAFETY: sendto on our socket with a valid buffer and address.
                    unsafe {
                        libc::sendto(
                            fd,
                            pkt.as_ptr().cast(),
                            pkt.len(),
                            0,
                            &dst as *const _ as *const libc::sockaddr,
                            core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                        );
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(pause);
            }
            // SAFETY: closing our descriptor.
            unsafe { libc::close(fd) };
        })
        .unwrap();
    });
}

/// One peer-sync latency sample: a knock from the knocker's extra address
/// `addr` through router 1; the time from the grant in router 1's table
/// until it is in router 2's (both polled over the control sockets).
fn sync_sample(ha: &Ha, addr: Ipv4Addr) -> Duration {
    // The knocker knocks from a fresh address (one grant each).
    ha.run_in(
        "k",
        &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
    );
    // The knocks leave from that address (bound).
    demo::in_netns(&ha.ns("k"), move || {
        for (port, tcp) in [(7000u16, true), (8000, false), (9000, true)] {
            let to = SocketAddr::new(IpAddr::V4(VIP), port);
            if tcp {
                let _ = connect_to_port(addr, to);
            } else {
                let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(addr), 0)).unwrap();
                s.send_to(b"knock", to).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .unwrap();
    // Both tables polled in turn (a status query takes well under a millisecond).
    let start = Instant::now();
    let (mut on_1, mut on_2) = (None, None);
    while on_1.is_none() || on_2.is_none() {
        if on_1.is_none() && has_grant(ha, "1", addr) {
            on_1 = Some(start.elapsed());
        }
        if on_2.is_none() && has_grant(ha, "2", addr) {
            on_2 = Some(start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the grant of {addr}: on router 1 {on_1:?}, on router 2 {on_2:?}:\n{}\n{}\n{}",
            ha.log("postern1"),
            ha.log("postern2"),
            ha.status("2")
        );
    }
    let (on_1, on_2) = (on_1.unwrap_or_default(), on_2.unwrap_or_default());
    on_2.saturating_sub(on_1)
}

/// A TCP SYN from `src` to `to` (a knock step; nothing listens).
fn connect_to_port(src: Ipv4Addr, to: SocketAddr) -> Option<()> {
    let SocketAddr::V4(to) = to else { return None };
    // SAFETY: as in connect_to.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        let sin = |a: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(a).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sin(src, 0);
        libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        let remote = sin(*to.ip(), to.port());
        libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        std::thread::sleep(Duration::from_millis(5));
        libc::close(fd);
    }
    Some(())
}

/// Median and maximum, in milliseconds.
fn median(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(*v.last().unwrap()))
}

#[test]
fn grants_bans_and_replay_state_follow_a_vrrp_failover() {
    if !ready_or_skip("grants_bans_and_replay_state_follow_a_vrrp_failover") {
        return;
    }
    let mut ha = Ha::new();
    ha.start_postern("1", "2");
    ha.start_postern("2", "1");
    ha.start_keepalived("1", 150);
    ha.wait_vip("1", 10);
    ha.start_keepalived("2", 100);
    // Both peers hear each other.
    wait_until("router 2 hears router 1", 10, || {
        ha.status("2").contains("\"reachable\":true")
    });
    assert_eq!(ha.connect("c", None), None, "the door is closed at first");

    // SPA through the master, the packet captured on the way.
    let sniffer = sniff_spa(&ha, "1");
    ha.spa();
    let captured = sniffed_payload(&sniffer);
    ha.wait_log("postern1", &format!("opened tcp:{PORT} for {CLIENT}"), 5);
    assert_eq!(ha.connect("c", None).as_deref(), Some("router1"));

    // A knock through the master.
    let vip = VIP.to_string();
    ha.run_in(
        "k",
        &[EXE, "knock", &vip, "tcp:7000", "udp:8000", "tcp:9000"],
    );
    ha.wait_log("postern1", &format!("opened tcp:{PORT} for {KNOCKER}"), 5);
    assert_eq!(ha.connect("k", None).as_deref(), Some("router1"));

    // The attacker guesses (junk SPA) and is banned on the master.
    let spa_to = SocketAddr::new(IpAddr::V4(VIP), SPA_PORT);
    send_udp(&ha, "a", Some(ATTACKER), vec![0xa5; 120], spa_to, 3);
    ha.wait_log("postern1", &format!("banned {ATTACKER} for 600 s"), 5);

    // Router 2 has it all before the failover (sent as it happened).
    wait_until("SPA grant synced", 5, || has_grant(&ha, "2", CLIENT));
    wait_until("knock grant synced", 5, || has_grant(&ha, "2", KNOCKER));
    wait_until("ban synced", 5, || has_ban(&ha, "2", ATTACKER));

    // Failover: router 1's keepalived stops; router 2 takes the address.
    let failover = Instant::now();
    ha.stop("keepalived1");
    ha.wait_vip("2", 10);
    let vip_moved = failover.elapsed();
    assert!(!ha.holds_vip("1"));
    let mut first_ok = None;
    while failover.elapsed() < Duration::from_secs(10) {
        if ha.connect("c", None).as_deref() == Some("router2") {
            first_ok = Some(failover.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let grant_works = first_ok.unwrap_or_else(|| {
        panic!(
            "the SPA grant did not work through router 2:\n{}\n{}",
            ha.log("postern2"),
            ha.status("2")
        )
    });
    ha.wait_log("postern2", "sending the live state", 5);
    ha.wait_log("postern2", "peers: asking for the live state", 5);

    // New connections of both clients succeed through the new master.
    assert_eq!(ha.connect("c", None).as_deref(), Some("router2"));
    assert_eq!(ha.connect("k", None).as_deref(), Some("router2"));

    // The captured SPA packet, replayed to the new master, is refused.
    let opened_before = ha.log("postern2").matches("opened tcp:").count();
    send_udp(&ha, "c", None, captured, spa_to, 1);
    ha.wait_log(
        "postern2",
        &format!("refused packet from {CLIENT} (client laptop): replay"),
        5,
    );
    assert_eq!(
        ha.log("postern2").matches("opened tcp:").count(),
        opened_before,
        "the replay opened nothing"
    );

    // The ban made on the old master holds on the new one: the attacker
    // gets no connection, not even after a knock.
    assert!(has_ban(&ha, "2", ATTACKER));
    let nft = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ha.ns("2"),
            "nft",
            "list",
            "set",
            "inet",
            "postern",
            "ban4",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&nft.stdout).contains(&ATTACKER.to_string()),
        "the ban is in router 2's kernel set"
    );
    assert_eq!(
        ha.connect("a", Some(ATTACKER)),
        None,
        "the banned attacker stays out"
    );

    eprintln!(
        "FIGURES failover: virtual address on router 2 after {} ms; SPA grant works through router 2 after {} ms",
        vip_moved.as_millis(),
        grant_works.as_millis()
    );

    // Sync latency, idle and under a spoofed flood at router 2's peer port:
    // router 1 takes the address back (keepalived preempts), knocks reach it.
    ha.start_keepalived("1", 150);
    ha.wait_vip("1", 10);
    let mut idle = Vec::new();
    for i in 0..10u8 {
        idle.push(sync_sample(&ha, Ipv4Addr::new(10, 214, 0, 150 + i)));
    }
    let forged = |s: &str| -> u64 {
        s.split("\"forged\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    // 1. From the WAN (the attacker), forging router 1's peer address, at
    // router 2's WAN address: the socket takes the peer link's datagrams
    // only (option interface), so none of it reaches postern.
    let wan_sent = Arc::new(AtomicUsize::new(0));
    start_peer_flood(
        &ha,
        "a",
        Ipv4Addr::new(10, 214, 0, 2),
        20_000,
        wan_sent.clone(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = forged(&ha.status("2"));
    let mut wan = Vec::new();
    for i in 0..10u8 {
        wan.push(sync_sample(&ha, Ipv4Addr::new(10, 214, 0, 170 + i)));
    }
    ha.flood_stop.store(true, Ordering::SeqCst);
    let wan_forged = forged(&ha.status("2")) - before;
    // 2. On the peer link itself (an attacker who owns that cable), at
    // router 2's peer address: every datagram costs an AEAD tag check.
    std::thread::sleep(Duration::from_millis(200));
    let link_sent = Arc::new(AtomicUsize::new(0));
    start_peer_flood(
        &ha,
        "1",
        Ipv4Addr::new(10, 215, 0, 2),
        5_000,
        link_sent.clone(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = forged(&ha.status("2"));
    let mut link = Vec::new();
    for i in 0..10u8 {
        link.push(sync_sample(&ha, Ipv4Addr::new(10, 214, 0, 190 + i)));
    }
    ha.flood_stop.store(true, Ordering::SeqCst);
    let status2 = ha.status("2");
    let link_forged = forged(&status2) - before;
    let (im, ix) = median(idle);
    let (wm, wx) = median(wan);
    let (lm, lx) = median(link);
    eprintln!(
        "FIGURES sync latency (grant in router 1's table -> in router 2's), 10 samples each: \
         idle median {im:.2} ms max {ix:.2} ms; spoofed flood from the WAN ({} datagrams at 20,000/s, {} reached postern) \
         median {wm:.2} ms max {wx:.2} ms; spoofed flood on the peer link ({} datagrams at 5,000/s, {} refused by the tag while sampling) \
         median {lm:.2} ms max {lx:.2} ms",
        wan_sent.load(Ordering::Relaxed),
        wan_forged,
        link_sent.load(Ordering::Relaxed),
        link_forged,
    );
    assert_eq!(
        wan_forged, 0,
        "forged datagrams from the WAN reached postern"
    );
    assert!(
        link_forged > 0,
        "the peer-link flood reached router 2's socket"
    );
    assert!(
        !status2.contains("\"malformed\":1"),
        "no forged datagram got through the tag"
    );
}
