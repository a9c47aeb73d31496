//! A network-namespace lab: a `router` namespace guarding a TCP service and a
//! `client` namespace joined to it by a veth pair; optionally a third,
//! `attacker` namespace on a second veth pair to the router (another link,
//! another subnet), from which the SPA tests replay captured packets.
//!
//! `postern demo` uses it to show the whole path on a real kernel; the
//! end-to-end tests use the same [`Lab`]. Everything it creates (namespaces,
//! veth pair, daemon processes, service threads) is removed on drop, also on
//! failure and on Ctrl-C. Needs root and iproute2's `ip`. Traffic never
//! leaves the namespaces: the addresses exist only inside them.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::spawn::{Child, Spawn, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use nix::sched::{setns, unshare, CloneFlags};

/// The router's IPv4 address inside the lab.
pub const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// The client's IPv4 address inside the lab.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
/// The router's IPv6 address inside the lab.
pub const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 1);
/// The client's IPv6 address inside the lab.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x213, 0, 0, 0, 0, 0, 2);

/// The router's IPv4 address on the attacker's link.
pub const ROUTER_X_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 1, 1);
/// The attacker's IPv4 address.
pub const ATTACKER_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 1, 2);
/// The router's IPv6 address on the attacker's link.
pub const ROUTER_X_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0, 0, 0, 1);
/// The attacker's IPv6 address.
pub const ATTACKER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0, 0, 0, 2);
/// The LAN host's IPv4 address (the third namespace, see [`Lab::add_lan_host`]).
pub const LAN_V4: Ipv4Addr = ATTACKER_V4;
/// The LAN host's IPv6 address.
pub const LAN_V6: Ipv6Addr = ATTACKER_V6;

const ROUTER_MAC: &str = "02:00:5e:d5:00:01";
const CLIENT_MAC: &str = "02:00:5e:d5:00:02";
const ROUTER_X_MAC: &str = "02:00:5e:d5:01:01";
const ATTACKER_MAC: &str = "02:00:5e:d5:01:02";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT/SIGTERM set a flag that the lab's waits check, so cleanup runs.
pub fn catch_interrupts() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// True once Ctrl-C (or TERM) arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn check_interrupt() -> io::Result<()> {
    if interrupted() {
        return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
    }
    Ok(())
}

/// Sleeps in small steps, returning early with an error on Ctrl-C.
pub fn sleep(d: Duration) -> io::Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupt()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Runs `ip ARGS...`, failing with its stderr.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Spawn::new("ip").args(args).output().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot run 'ip' (install iproute2): {e}"))
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs `ip` with whitespace-separated words (none of which contain spaces).
fn ip_words(words: &str) -> io::Result<()> {
    ip(&words.split_whitespace().collect::<Vec<_>>())
}

/// Waits (at most 3 s) until each (namespace, device) reports carrier.
fn wait_carrier(ends: &[(&str, &str)]) -> io::Result<()> {
    let end = Instant::now() + Duration::from_secs(3);
    for &(ns, dev) in ends {
        let path = format!("/sys/class/net/{dev}/carrier");
        loop {
            let out = Spawn::new("ip")
                .args(["netns", "exec", ns, "cat", &path])
                .output()?;
            if String::from_utf8_lossy(&out.stdout).trim() == "1" {
                break;
            }
            if Instant::now() >= end {
                let msg = format!("{dev} in {ns} has no carrier");
                return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// One end of a veth pair: namespace, device, addresses, MAC.
type End<'a> = (&'a str, &'a str, Ipv4Addr, Ipv6Addr, &'a str);

/// Creates a veth pair between two namespaces with /24 and /64 addresses. Fixed
/// MACs and permanent neighbour entries: no ARP/ND races while the link comes
/// up, so the first packet of a test is never lost.
fn link(a: End<'_>, b: End<'_>) -> io::Result<()> {
    ip_words(&format!(
        "link add {} netns {} type veth peer name {} netns {}",
        a.1, a.0, b.1, b.0
    ))?;
    let ends = [a, b];
    for (i, &(ns, dev, v4, v6, mac)) in ends.iter().enumerate() {
        let (_, _, peer_v4, peer_v6, peer_mac) = ends[1 - i];
        ip_words(&format!("-n {ns} link set lo up"))?;
        ip_words(&format!("-n {ns} link set {dev} address {mac}"))?;
        ip_words(&format!("-n {ns} addr add {v4}/24 dev {dev}"))?;
        ip_words(&format!("-n {ns} addr add {v6}/64 dev {dev} nodad"))?;
        ip_words(&format!("-n {ns} link set {dev} up"))?;
        for peer in [peer_v4.to_string(), peer_v6.to_string()] {
            ip_words(&format!(
                "-n {ns} neigh replace {peer} lladdr {peer_mac} dev {dev} nud permanent"
            ))?;
        }
    }
    wait_carrier(&[(a.0, a.1), (b.0, b.1)])
}

/// Runs `f` on a new thread inside network namespace `ns` and returns its result.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> io::Result<T> {
        let file = File::open(&path)?;
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Writes a config file as `postern check` wants one that holds keys: mode
/// 0600 (from its creation on), owned by the owner of `dir` (the lab directory,
/// which a test may give to the daemon's user).
fn write_private(path: &Path, text: &str, dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    let owner = std::fs::metadata(dir)?;
    if owner.uid() != f.metadata()?.uid() {
        std::os::unix::fs::fchown(&f, Some(owner.uid()), Some(owner.gid()))?;
    }
    Ok(())
}

/// Sets the kernel parameter `key` (sysctl's dotted name, e.g.
/// `net.ipv4.ip_forward`) to `value` in namespace `ns` by writing
/// `/proc/sys/...` from a thread inside it (the `net.*` files belong to the
/// writer's namespace), so that no `sysctl` tool (procps) is needed.
pub fn set_sysctl(ns: &str, key: &str, value: &str) -> io::Result<()> {
    if key.is_empty()
        || key
            .split('.')
            .any(|part| part.is_empty() || part.contains('/'))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sysctl {key}: not a parameter name"),
        ));
    }
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = format!("{value}\n");
    in_netns(ns, move || std::fs::write(&path, value))?
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key} in {ns}: {e}")))
}

/// A running `postern daemon` inside the router namespace, with its log.
pub struct DaemonProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl DaemonProcess {
    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains `needle` (at most `timeout`); returns the line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> io::Result<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            if Instant::now() >= end {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "daemon did not log '{needle}' within {timeout:?}; log:\n{}",
                        self.log().join("\n")
                    ),
                ));
            }
            check_interrupt()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (e.g. `libc::SIGKILL`, `libc::SIGHUP`).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a child we own; an already-gone pid only returns ESRCH.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Waits for exit (at most `timeout`, then kills); returns the exit code if it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status.code();
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            self.wait_exit(Duration::from_secs(3));
        }
    }
}

/// A TCP service in the router namespace: greets, then echoes lines back.
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(mut s: TcpStream, stop: Arc<AtomicBool>, greeting: &str) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = s.write_all(format!("{greeting}\n").as_bytes());
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Runs `f` on a new thread that first moves into a new, unnamed network
/// namespace (`unshare(CLONE_NEWNET)`): only loopback, no rules, no sets.
/// Processes it spawns inherit the namespace, which vanishes with the thread.
/// A panic in `f` is resumed on the caller (for tests' assertions).
pub fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let outer = std::fs::read_link("/proc/self/ns/net")?;
    let joined = std::thread::spawn(move || -> io::Result<T> {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
        if std::fs::read_link("/proc/thread-self/ns/net")? == outer {
            return Err(io::Error::other(
                "thread still in the outer network namespace",
            ));
        }
        Ok(f())
    })
    .join();
    match joined {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The two namespaces and what runs in them. Dropping it removes everything.
pub struct Lab {
    /// Router namespace name.
    pub router_ns: String,
    /// Client namespace name.
    pub client_ns: String,
    /// The router's end of the veth pair (the capture device).
    pub router_dev: String,
    /// The attacker namespace, once [`Lab::add_attacker`] made it.
    pub attacker_ns: Option<String>,
    /// The router's end of the attacker's veth pair (also captured when present).
    pub router_x_dev: Option<String>,
    dir: PathBuf,
    services: Vec<Service>,
    daemons: Vec<DaemonProcess>,
}

impl Lab {
    /// Creates namespaces `pst-TAG-r` and `pst-TAG-c` joined by veth `prTAG`/`pcTAG`
    /// (TAG at most 10 characters), with the `ROUTER_*`/`CLIENT_*` addresses.
    pub fn new(tag: &str) -> io::Result<Lab> {
        if tag.is_empty() || tag.len() > 10 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "lab tag: 1-10 letters/digits",
            ));
        }
        let router_ns = format!("pst-{tag}-r");
        let client_ns = format!("pst-{tag}-c");
        // Leftovers of an interrupted earlier run go first.
        let _ = ip(&["netns", "del", &router_ns]);
        let _ = ip(&["netns", "del", &client_ns]);
        let _ = ip(&["netns", "del", &format!("pst-{tag}-x")]);
        let dir = std::env::temp_dir().join(format!("postern-lab-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let lab = Lab {
            router_dev: format!("pr{tag}"),
            router_ns,
            client_ns,
            attacker_ns: None,
            router_x_dev: None,
            dir,
            services: Vec::new(),
            daemons: Vec::new(),
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> io::Result<()> {
        let (r, c) = (self.router_ns.as_str(), self.client_ns.as_str());
        let client_dev = format!("pc{}", &self.router_dev[2..]);
        ip_words(&format!("netns add {r}"))?;
        ip_words(&format!("netns add {c}"))?;
        link(
            (r, &self.router_dev, ROUTER_V4, ROUTER_V6, ROUTER_MAC),
            (c, &client_dev, CLIENT_V4, CLIENT_V6, CLIENT_MAC),
        )
    }

    /// Deletes the router–client veth pair and creates it again with the same
    /// names and addresses: the router's device gets a new ifindex (as after a
    /// PPPoE reconnect). For the interface lifecycle tests.
    pub fn recreate_client_link(&self) -> io::Result<()> {
        ip_words(&format!(
            "-n {} link del {}",
            self.router_ns, self.router_dev
        ))?;
        let client_dev = format!("pc{}", &self.router_dev[2..]);
        link(
            (
                &self.router_ns,
                &self.router_dev,
                ROUTER_V4,
                ROUTER_V6,
                ROUTER_MAC,
            ),
            (
                &self.client_ns,
                &client_dev,
                CLIENT_V4,
                CLIENT_V6,
                CLIENT_MAC,
            ),
        )
    }

    /// Adds namespace `pst-TAG-x` joined to the router by veth `pqTAG`/`pxTAG`,
    /// with [`ROUTER_X_V4`]/[`ATTACKER_V4`] (and the IPv6 pair). Daemons started
    /// afterwards capture on both router devices.
    pub fn add_attacker(&mut self) -> io::Result<()> {
        let tag = &self.router_dev[2..];
        let x = format!("pst-{tag}-x");
        let (router_x, attacker) = (format!("pq{tag}"), format!("px{tag}"));
        ip_words(&format!("netns add {x}"))?;
        self.attacker_ns = Some(x.clone());
        link(
            (
                &self.router_ns,
                &router_x,
                ROUTER_X_V4,
                ROUTER_X_V6,
                ROUTER_X_MAC,
            ),
            (&x, &attacker, ATTACKER_V4, ATTACKER_V6, ATTACKER_MAC),
        )?;
        // The attacker stands for the internet: from the router's side it is
        // not on-link (postern never bans its on-link subnets, see
        // `crate::bans`). The router's end keeps a single address (/32,
        // /128) and reaches the attacker by a host route, as over a
        // point-to-point uplink without a peer address.
        point_to_point(
            &self.router_ns,
            &router_x,
            (ROUTER_X_V4, ROUTER_X_V6),
            (ATTACKER_V4, ATTACKER_V6),
        )?;
        self.router_x_dev = Some(router_x);
        Ok(())
    }

    /// Makes the client a remote host as seen from the router, as
    /// [`Lab::add_attacker`] does for the attacker: the router's end of the
    /// client link keeps only [`ROUTER_V4`]/32 and [`ROUTER_V6`]/128 and
    /// reaches the client by host routes, so that the client is not on an
    /// on-link subnet (which postern never bans). Call it before starting a
    /// daemon that must be able to ban the client.
    pub fn make_client_remote(&self) -> io::Result<()> {
        point_to_point(
            &self.router_ns,
            &self.router_dev,
            (ROUTER_V4, ROUTER_V6),
            (CLIENT_V4, CLIENT_V6),
        )
    }

    /// The lab's scratch directory (config files; a good `state_dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Turns the third namespace into a LAN host behind the router: makes it
    /// with [`Lab::add_attacker`] if needed ([`LAN_V4`] is [`ATTACKER_V4`]),
    /// gives the LAN host and the client default routes via the router, and
    /// turns on IPv4 and IPv6 forwarding in the router. Returns the LAN
    /// namespace's name. For the forward tests.
    pub fn add_lan_host(&mut self) -> io::Result<String> {
        if self.attacker_ns.is_none() {
            self.add_attacker()?;
        }
        let lan = self.attacker_ns.clone().unwrap_or_default();
        for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
            set_sysctl(&self.router_ns, key, "1")?;
        }
        ip_words(&format!("-n {lan} route replace default via {ROUTER_X_V4}"))?;
        ip_words(&format!(
            "-n {lan} -6 route replace default via {ROUTER_X_V6}"
        ))?;
        let c = &self.client_ns;
        ip_words(&format!("-n {c} route replace default via {ROUTER_V4}"))?;
        ip_words(&format!("-n {c} -6 route replace default via {ROUTER_V6}"))?;
        Ok(lan)
    }

    /// Starts a TCP service on `port` (IPv4 and IPv6) in the router namespace.
    pub fn serve_tcp(&mut self, port: u16) -> io::Result<()> {
        let ns = self.router_ns.clone();
        self.serve_tcp_in(&ns, port, "hello from the router")
    }

    /// Starts a TCP service on `port` (IPv4 and IPv6) in namespace `ns` that
    /// greets with `greeting`, then echoes lines back.
    pub fn serve_tcp_in(&mut self, ns: &str, port: u16, greeting: &'static str) -> io::Result<()> {
        let listener = in_netns(ns, move || {
            let l = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))?;
            l.set_nonblocking(true)?;
            Ok::<_, io::Error>(l)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let f = flag.clone();
                        std::thread::spawn(move || serve_connection(s, f, greeting));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.services.push(Service {
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Writes `config` to a file and starts `exe daemon -c FILE -i ROUTER_DEV` in the
    /// router namespace; waits (at most 10 s) until it logs that it is ready.
    /// `echo` prints each daemon log line with that prefix as it arrives.
    pub fn start_daemon(
        &mut self,
        exe: &Path,
        config: &str,
        echo: Option<&'static str>,
    ) -> io::Result<&mut DaemonProcess> {
        self.start_daemon_wrapped(exe, config, echo, &[])
    }

    /// [`Lab::start_daemon`] through `wrapper` (a command that execs the
    /// rest of its arguments, e.g. `setpriv --reuid nobody …`): `ip netns
    /// exec ROUTER WRAPPER... exe daemon …`. The daemon's pid is then the
    /// wrapper's, which must exec (not fork).
    pub fn start_daemon_wrapped(
        &mut self,
        exe: &Path,
        config: &str,
        echo: Option<&'static str>,
        wrapper: &[&str],
    ) -> io::Result<&mut DaemonProcess> {
        let path = self
            .dir
            .join(format!("postern-{}.conf", self.daemons.len()));
        write_private(&path, config, &self.dir)?;
        let mut child = Spawn::new("ip")
            .args(["netns", "exec", &self.router_ns])
            .args(wrapper)
            .arg(exe)
            .args(["daemon", "-c"])
            .arg(&path)
            .args(["-i", &self.router_dev])
            .args(self.router_x_dev.iter().flat_map(|d| ["-i", d.as_str()]))
            .arg("--control")
            .arg(self.control_path(self.daemons.len()))
            .stdin(Stdio::Null)
            .stdout(Stdio::Null)
            .stderr(Stdio::Piped)
            .spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr pipe"))?;
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(prefix) = echo {
                    println!("{prefix}{line}");
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        self.daemons.push(DaemonProcess {
            child,
            log,
            reader: Some(reader),
        });
        let d = self
            .daemons
            .last_mut()
            .ok_or_else(|| io::Error::other("no daemon"))?;
        d.wait_for_log("ready:", Duration::from_secs(10))?;
        Ok(d)
    }

    /// The control socket of the `index`-th daemon (for `postern status -s`).
    pub fn control_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("control-{index}.sock"))
    }

    /// Runs `exe status [--json] -s SOCKET` against the `index`-th daemon.
    pub fn status(&self, exe: &Path, index: usize, json: bool) -> io::Result<String> {
        let mut cmd = Spawn::new(exe);
        cmd.arg("status").arg("-s").arg(self.control_path(index));
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `index`-th daemon started (panics if there is none: for tests).
    pub fn daemon(&mut self, index: usize) -> &mut DaemonProcess {
        &mut self.daemons[index]
    }

    /// Waits (at most 5 s) until the newest daemon logs a line containing `needle`;
    /// panics with the log otherwise (for tests).
    pub fn daemons_wait(&self, needle: &str) -> String {
        match self.daemons.last() {
            Some(d) => d
                .wait_for_log(needle, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{e}")),
            None => panic!("no daemon started"),
        }
    }

    /// The config file path of the `index`-th daemon (rewrite it to test reloads).
    pub fn config_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("postern-{index}.conf"))
    }

    /// Tries a TCP connection from the client namespace; on success returns the greeting.
    pub fn connect(
        &self,
        addr: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> io::Result<Option<String>> {
        self.connect_from(&self.client_ns, addr, port, timeout)
    }

    /// Tries a TCP connection from namespace `ns`; on success returns the greeting.
    pub fn connect_from(
        &self,
        ns: &str,
        addr: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> io::Result<Option<String>> {
        in_netns(ns, move || {
            let mut s = match TcpStream::connect_timeout(&SocketAddr::new(addr, port), timeout) {
                Ok(s) => s,
                Err(_) => return None,
            };
            let _ = s.set_read_timeout(Some(timeout));
            let mut line = String::new();
            let _ = BufReader::new(&mut s).read_line(&mut line);
            Some(line.trim_end().to_string())
        })
    }

    /// Opens a TCP connection from the client namespace and keeps it.
    pub fn open_connection(
        &self,
        addr: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        in_netns(&self.client_ns, move || {
            let s = TcpStream::connect_timeout(&SocketAddr::new(addr, port), timeout)?;
            s.set_read_timeout(Some(timeout))?;
            Ok::<_, io::Error>(s)
        })?
    }

    /// Runs a command in the client namespace (`ip netns exec CLIENT ARGS...`).
    pub fn run_in_client(&self, args: &[&str]) -> io::Result<Output> {
        Spawn::new("ip")
            .args(["netns", "exec", &self.client_ns])
            .args(args)
            .output()
    }

    /// Runs a command in the router namespace.
    pub fn run_in_router(&self, args: &[&str]) -> io::Result<Output> {
        Spawn::new("ip")
            .args(["netns", "exec", &self.router_ns])
            .args(args)
            .output()
    }

    /// Runs `sh -c SCRIPT` in the router namespace; an error carries its stderr.
    pub fn sh_in_router(&self, script: &str) -> io::Result<String> {
        let out = self.run_in_router(&["sh", "-c", script])?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "`{script}` in {}: {}: {}",
                self.router_ns,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// The router namespace's nftables ruleset (`nft list ruleset`).
    pub fn router_ruleset(&self) -> String {
        self.run_in_router(&["nft", "list", "ruleset"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.daemons.clear();
        self.services.clear();
        let _ = ip(&["netns", "del", &self.router_ns]);
        let _ = ip(&["netns", "del", &self.client_ns]);
        if let Some(x) = &self.attacker_ns {
            let _ = ip(&["netns", "del", x]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Turns the router's end `dev` (in namespace `ns`) of a /24 + /64 link into
/// a single-address end (`router`/32, /128) with host routes to `peer`.
fn point_to_point(
    ns: &str,
    dev: &str,
    (router4, router6): (Ipv4Addr, Ipv6Addr),
    (peer4, peer6): (Ipv4Addr, Ipv6Addr),
) -> io::Result<()> {
    for cmd in [
        format!("-n {ns} addr del {router4}/24 dev {dev}"),
        format!("-n {ns} addr add {router4}/32 dev {dev}"),
        format!("-n {ns} route add {peer4}/32 dev {dev}"),
        format!("-n {ns} addr del {router6}/64 dev {dev}"),
        format!("-n {ns} addr add {router6}/128 dev {dev} nodad"),
        format!("-n {ns} route add {peer6}/128 dev {dev}"),
    ] {
        ip_words(&cmd)?;
    }
    Ok(())
}

/// Sends one line on an established connection and reads the echo.
pub fn echo(s: &mut TcpStream, text: &str) -> io::Result<String> {
    s.write_all(format!("{text}\n").as_bytes())?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).trim_end().to_string())
}

/// The demo's config: knock tcp:7000 udp:8000 tcp:9000 to open tcp:2222 for `duration` s.
pub fn demo_config(duration: u64) -> String {
    format!(
        "config postern 'main'\n\
         \toption backend 'nft'\n\
         \toption log_level 'info'\n\n\
         config sequence 'service'\n\
         \tlist knock 'tcp:7000'\n\
         \tlist knock 'udp:8000'\n\
         \tlist knock 'tcp:9000'\n\
         \toption timeout '10'\n\
         \toption action 'open'\n\
         \tlist open 'tcp:2222'\n\
         \toption duration '{duration}'\n"
    )
}

/// Service port guarded in the demo.
pub const DEMO_PORT: u16 = 2222;

struct Timeline(Instant);

impl Timeline {
    fn say(&self, who: &str, what: &str) {
        println!("[{:>5.1}s] {who:<7} {what}", self.0.elapsed().as_secs_f64());
    }
}

/// The command that runs the demo as root: this very executable under
/// `sudo` (a build under `target/` is not on root's PATH, nor often on the
/// user's), its path quoted for the shell when it needs it.
pub fn root_hint(exe: &Path) -> String {
    let path = exe.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !path.is_empty() && path.chars().all(plain) {
        format!("sudo {path} demo")
    } else {
        format!("sudo '{}' demo", path.replace('\'', r"'\''"))
    }
}

/// `postern demo`: closed → knock → open → expired, on a real kernel. Ok only if
/// every step behaved; everything created is removed in any case.
pub fn run(exe: &Path) -> Result<(), String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "the demo needs root (network namespaces and nftables): {}",
            root_hint(exe)
        ));
    }
    catch_interrupts();
    let t = Timeline(Instant::now());
    let duration = 5;
    let target = IpAddr::V4(ROUTER_V4);
    let probe = Duration::from_millis(700);
    let e = |e: io::Error| e.to_string();

    t.say("lab", &format!("namespaces pst-demo-r (router {ROUTER_V4}) and pst-demo-c (client {CLIENT_V4}), veth between"));
    let mut lab = Lab::new("demo").map_err(e)?;
    lab.serve_tcp(DEMO_PORT).map_err(e)?;
    t.say("router", &format!("service listening on tcp:{DEMO_PORT}"));
    // A fresh SPA key for the client 'laptop', as `postern keygen` makes one.
    // The daemon stays root (`option user 'root'`): a desktop has no system
    // user `postern` to drop to (the OpenWrt package creates one).
    let mut key = [0u8; crate::spa::KEY_LEN];
    crate::random::fill(&mut key).map_err(e)?;
    let key = crate::spa::Key::from_bytes(key).to_base64();
    let config = format!(
        "{}\nconfig client 'laptop'\n\toption key '{key}'\n\tlist allow 'tcp:{DEMO_PORT}'\n\toption max_duration '60'\n\n\
         config postern 'main'\n\toption state_dir '{}'\n\toption user 'root'\n",
        demo_config(duration),
        lab.dir().join("state").display()
    );
    t.say(
        "router",
        "postern daemon: knock tcp:7000 udp:8000 tcp:9000 opens tcp:2222 for 5 s;",
    );
    t.say(
        "router",
        "                SPA client 'laptop' (postern keygen) may open tcp:2222",
    );
    lab.start_daemon(exe, &config, Some("          daemon  "))
        .map_err(e)?;

    match lab.connect(target, DEMO_PORT, probe).map_err(e)? {
        None => t.say(
            "client",
            &format!("connect {target}:{DEMO_PORT} -> refused, like any closed port (guarded)"),
        ),
        Some(g) => return Err(format!("the port answered before any knock: {g}")),
    }

    let knock = [
        "postern",
        "knock",
        "10.213.0.1",
        "tcp:7000",
        "udp:8000",
        "tcp:9000",
    ];
    t.say("client", &knock.join(" "));
    let exe_s = exe.to_string_lossy().into_owned();
    let mut cmd = vec![exe_s.as_str()];
    cmd.extend_from_slice(&knock[1..]);
    let out = lab.run_in_client(&cmd).map_err(e)?;
    if !out.status.success() {
        return Err(format!(
            "knock failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    lab.daemons
        .last()
        .ok_or("no daemon")?
        .wait_for_log("opened tcp:2222", Duration::from_secs(3))
        .map_err(e)?;
    let mut kept = match lab.open_connection(target, DEMO_PORT, probe) {
        Ok(mut s) => {
            let mut greeting = String::new();
            BufReader::new(&mut s).read_line(&mut greeting).map_err(e)?;
            t.say(
                "client",
                &format!(
                    "connect {target}:{DEMO_PORT} -> \"{}\" (open)",
                    greeting.trim_end()
                ),
            );
            s
        }
        Err(err) => return Err(format!("the port stayed closed after the knock: {err}")),
    };

    t.say(
        "client",
        &format!("keeps that connection; waits for the {duration} s grant to run out"),
    );
    let opened = Instant::now();
    sleep(Duration::from_secs(duration)).map_err(e)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match lab.connect(target, DEMO_PORT, probe).map_err(e)? {
            None => break,
            Some(_) if Instant::now() < deadline => sleep(Duration::from_millis(200)).map_err(e)?,
            Some(_) => return Err("the port did not close after the grant expired".into()),
        }
    }
    t.say(
        "client",
        &format!(
            "new connect -> refused after {:.1} s (closed again)",
            opened.elapsed().as_secs_f64()
        ),
    );
    let reply = echo(&mut kept, "still there?")
        .map_err(|err| format!("established connection was cut: {err}"))?;
    t.say(
        "client",
        &format!("the established connection still works: echo \"{reply}\""),
    );
    drop(kept);

    // Act two: one encrypted UDP packet instead of a knock sequence.
    let spa = |extra: &[&str]| -> Result<(), String> {
        let mut cmd = vec![exe_s.as_str(), "spa", "10.213.0.1", "-A", "tcp/2222"];
        cmd.extend_from_slice(extra);
        cmd.extend_from_slice(&["--key", key.as_str()]);
        let out = lab.run_in_client(&cmd).map_err(e)?;
        if !out.status.success() {
            return Err(format!(
                "spa failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    };
    t.say(
        "client",
        "postern spa 10.213.0.1 -A tcp/2222 --duration 30 --key <laptop's key>",
    );
    spa(&["--duration", "30"])?;
    let daemon = lab.daemons.last().ok_or("no daemon")?;
    daemon
        .wait_for_log(
            "opened tcp:2222 for 10.213.0.2 for 30 s (spa client laptop",
            Duration::from_secs(3),
        )
        .map_err(e)?;
    match lab.connect(target, DEMO_PORT, probe).map_err(e)? {
        Some(g) => t.say(
            "client",
            &format!("connect {target}:{DEMO_PORT} -> \"{g}\" (open)"),
        ),
        None => return Err("the port stayed closed after the SPA packet".into()),
    }
    let status = lab.status(exe, 0, false).map_err(e)?;
    t.say("router", "postern status:");
    for line in status.lines().take(4) {
        println!("          status  {line}");
    }
    t.say(
        "client",
        "postern spa 10.213.0.1 -A tcp/2222 --close --key <laptop's key>",
    );
    spa(&["--close"])?;
    daemon
        .wait_for_log("closed tcp:2222 for 10.213.0.2", Duration::from_secs(3))
        .map_err(e)?;
    match lab.connect(target, DEMO_PORT, probe).map_err(e)? {
        None => t.say(
            "client",
            &format!("connect {target}:{DEMO_PORT} -> refused (closed at once)"),
        ),
        Some(_) => return Err("the port stayed open after the SPA close request".into()),
    }
    drop(lab);
    t.say("lab", "removed namespaces, veth, daemon and service");
    println!("demo OK: closed -> knock -> open -> closed again; SPA open -> close");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hint_names_the_running_executable() {
        assert_eq!(
            root_hint(Path::new("/home/u/postern/target/release/postern")),
            "sudo /home/u/postern/target/release/postern demo"
        );
        assert_eq!(
            root_hint(Path::new("/home/u/my dir/it's/postern")),
            r"sudo '/home/u/my dir/it'\''s/postern' demo"
        );
    }

    #[test]
    fn sysctl_names_that_would_leave_proc_sys_are_refused() {
        for key in ["", "net..x", "../../etc/passwd", "net/ipv4.x", "net.ipv4."] {
            let e = set_sysctl("nowhere", key, "1").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{key}");
        }
    }
}
