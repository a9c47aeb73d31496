//! `postern ssh-proxy`: SSH through postern in one line, as an OpenSSH
//! `ProxyCommand`:
//!
//! ```text
//! Host home
//!     HostName router.example.org
//!     ProxyCommand postern ssh-proxy --stanza home %h %p
//! ```
//!
//! It sends the stanza's SPA request (or a knock sequence) for the target
//! port to every address of the router, retries the TCP connect to the
//! target's addresses in the resolver's order (IPv6 and IPv4) until the
//! grant is live or [`DEFAULT_WAIT`] has passed, then either relays its
//! stdin/stdout to the connection (a `poll` loop, no threads, no async
//! runtime) or, under `ProxyUseFdpass yes`, hands the connected socket to
//! ssh (`SCM_RIGHTS` over its stdout) and exits. When no connection comes
//! it fails with a message that says what was sent and tried.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::conf::{self, Stanza};
use super::spa::{self, Request};
use crate::port::PortSpec;
use crate::spa::{Key, Kind, Target};

/// How long the connect is retried after the request by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// Longest `--wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// The first connect attempt's timeout; each later one doubles, up to [`MAX_STEP`].
const FIRST_STEP: Duration = Duration::from_millis(250);
/// The longest single connect attempt.
const MAX_STEP: Duration = Duration::from_secs(2);
/// Least time between two rounds of connect attempts.
const RETRY_GAP: Duration = Duration::from_millis(100);
/// Relay buffer per direction.
const RELAY_BUF: usize = 16 * 1024;

/// How the connection reaches ssh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Pass the socket when stdin and stdout are one Unix socket (what
    /// `ProxyUseFdpass yes` gives), else relay.
    Auto,
    /// Always pass the socket over stdout (`--fdpass`).
    FdPass,
    /// Always relay stdin/stdout (`--relay`).
    Relay,
}

/// What `postern ssh-proxy` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The target host (`%h`): a name or an address.
    pub host: String,
    /// The target port (`%p`).
    pub port: u16,
    /// The router to send the request to (default: the stanza's host, else `host`).
    pub router: Option<String>,
    /// The SPA key (`--key`, `--key-file` or the stanza's).
    pub key: Option<Key>,
    /// `-A`: the ports to ask for (default: `tcp:PORT`).
    pub access: Option<Vec<PortSpec>>,
    /// `--knock`: send this static knock sequence instead of an SPA packet.
    pub knock: Option<Vec<PortSpec>>,
    /// The router's SPA port.
    pub spa_port: u16,
    /// Seconds the grant is asked for.
    pub duration: u32,
    /// The explicit address to grant (the stanza's `address`), else the source.
    pub target: Target,
    /// The stanza's `resolve`: a STUN server that tells the address to
    /// seal in each packet (per router address family).
    pub resolve: Option<String>,
    /// How long to retry the connect.
    pub wait: Duration,
    /// Socket passing or relay.
    pub handover: Handover,
    /// Say on stderr what was sent and tried.
    pub verbose: bool,
}

/// `postern ssh-proxy [OPTIONS] HOST PORT`: parses the arguments and runs.
pub fn cmd(args: &[String]) -> Result<ExitCode, String> {
    let opts = parse(args)?;
    run(&opts).map_err(|e| format!("ssh-proxy: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn value<'a>(it: &mut std::slice::Iter<'a, String>, flag: &str) -> Result<&'a String, String> {
    it.next()
        .ok_or_else(|| format!("ssh-proxy: {flag} needs a value"))
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut positional: Vec<&String> = Vec::new();
    let mut stanza_name: Option<String> = None;
    let mut conf_path: Option<PathBuf> = None;
    let mut key: Option<Key> = None;
    let mut access = None;
    let mut knock = None;
    let mut spa_port = None;
    let mut duration = None;
    let mut wait = DEFAULT_WAIT;
    let mut handover = Handover::Auto;
    let mut verbose = false;
    let mut router = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stanza" | "-n" => stanza_name = Some(value(&mut it, a)?.clone()),
            "-c" | "--config" => conf_path = Some(PathBuf::from(value(&mut it, a)?)),
            "--key" => {
                let v = value(&mut it, a)?;
                key = Some(Key::from_base64(v).map_err(|e| format!("--key: {e}"))?);
            }
            "--key-file" => {
                let path = PathBuf::from(value(&mut it, a)?);
                key = Some(conf::read_key_file(&path)?);
            }
            "-A" | "--access" => access = Some(spa::parse_access(value(&mut it, a)?)?),
            "--knock" => {
                let steps = value(&mut it, a)?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<PortSpec>()
                            .map_err(|e| format!("--knock '{s}': {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                knock = Some(steps);
            }
            "--router" => router = Some(value(&mut it, a)?.clone()),
            "-p" | "--port" => {
                let v = value(&mut it, a)?;
                spa_port = Some(
                    crate::port::parse_port(v)
                        .ok_or_else(|| format!("--port '{v}' is not a port number"))?,
                );
            }
            "--duration" | "-d" => {
                let v = value(&mut it, a)?;
                duration = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|&d| d > 0)
                        .ok_or_else(|| format!("--duration '{v}' is not a number of seconds"))?,
                );
            }
            "--wait" => {
                let v = value(&mut it, a)?;
                wait = v
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
                    .filter(|w| !w.is_zero() && *w <= MAX_WAIT)
                    .ok_or_else(|| {
                        format!("--wait '{v}' is not 1 to {} seconds", MAX_WAIT.as_secs())
                    })?;
            }
            "--fdpass" => handover = Handover::FdPass,
            "--relay" => handover = Handover::Relay,
            "-v" | "--verbose" => verbose = true,
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(format!("ssh-proxy: unknown option '{other}'"))
            }
            _ => positional.push(a),
        }
    }
    let [host, port] = positional[..] else {
        return Err("ssh-proxy: give HOST PORT (in ssh_config: ProxyCommand postern ssh-proxy --stanza NAME %h %p)".into());
    };
    let port = crate::port::parse_port(port)
        .ok_or_else(|| format!("ssh-proxy: '{port}' is not a port number"))?;
    let stanza = match stanza_name {
        None => None,
        Some(name) => Some(load_stanza(&name, conf_path)?),
    };
    let key = key.or_else(|| stanza.as_ref().map(|s| s.key.clone()));
    if key.is_none() && knock.is_none() {
        return Err(
            "ssh-proxy: give a key (--stanza NAME, --key-file F or --key B64) or --knock".into(),
        );
    }
    Ok(Options {
        host: host.clone(),
        port,
        router: router.or_else(|| stanza.as_ref().map(|s| s.host.clone())),
        key,
        access,
        knock,
        spa_port: spa_port
            .or_else(|| stanza.as_ref().map(|s| s.port))
            .unwrap_or(conf::DEFAULT_PORT),
        duration: duration
            .or_else(|| stanza.as_ref().map(|s| s.duration))
            .unwrap_or(conf::DEFAULT_DURATION),
        target: stanza
            .as_ref()
            .and_then(|s| s.address)
            .map_or(Target::Source, Target::Addr),
        resolve: stanza.as_ref().and_then(|s| s.resolve.clone()),
        wait,
        handover,
        verbose,
    })
}

fn load_stanza(name: &str, path: Option<PathBuf>) -> Result<Stanza, String> {
    let path = path
        .or_else(conf::default_path)
        .ok_or("ssh-proxy: no client config path: give -c FILE")?;
    let stanzas = conf::load(&path).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        lines.join("\n")
    })?;
    Ok(conf::find(&stanzas, name, &path)?.clone())
}

/// Every address of `host` for `port`, in the resolver's order, each once.
pub fn addresses(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in (trimmed, port).to_socket_addrs()? {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("cannot resolve '{host}'"),
        ));
    }
    Ok(out)
}

/// Sends the request, connects, hands the connection to ssh.
pub fn run(o: &Options) -> Result<(), String> {
    let targets = addresses(&o.host, o.port).map_err(|e| format!("{}: {e}", o.host))?;
    let router = o.router.as_deref().unwrap_or(&o.host);
    let routers: Vec<IpAddr> = addresses(router, 0)
        .map_err(|e| format!("router {router}: {e}"))?
        .into_iter()
        .map(|a| a.ip())
        .collect();
    let what = request(o, &routers)?;
    let stream = connect(&targets, o.wait, o.verbose).map_err(|e| {
        let tried: Vec<String> = targets.iter().map(ToString::to_string).collect();
        format!(
            "no connection to {} port {} within {} s after {what} (tried {}; last: {e}): \
             the router did not open the port — check the key and port, both clocks, \
             a ban, and the router's log (logread -e postern)",
            o.host,
            o.port,
            o.wait.as_secs(),
            tried.join(", ")
        )
    })?;
    let pass = match o.handover {
        Handover::FdPass => true,
        Handover::Relay => false,
        Handover::Auto => stdio_is_one_socket(),
    };
    if pass {
        if o.verbose {
            eprintln!("postern ssh-proxy: passing the connected socket to ssh (ProxyUseFdpass)");
        }
        return pass_fd(stream.as_raw_fd()).map_err(|e| format!("passing the socket to ssh: {e}"));
    }
    relay(&stream).map_err(|e| format!("relay: {e}"))
}

/// Sends the SPA request (or the knocks) to every router address; says
/// what was sent. Fails only when nothing could be sent.
fn request(o: &Options, routers: &[IpAddr]) -> Result<String, String> {
    let mut sent = 0;
    let mut last_error = String::new();
    let what;
    if let Some(steps) = &o.knock {
        let list: Vec<String> = steps.iter().map(ToString::to_string).collect();
        what = format!("the knocks {}", list.join(" "));
        for &ip in routers {
            match super::knock(ip, steps, Duration::ZERO) {
                Ok(()) => {
                    sent += 1;
                    if o.verbose {
                        eprintln!("postern ssh-proxy: knocked {} at {ip}", list.join(" "));
                    }
                }
                Err(e) => last_error = format!("{ip}: {e}"),
            }
        }
    } else {
        let key = o.key.as_ref().ok_or("no key")?;
        let mut req = Request {
            kind: Kind::Open,
            target: o.target,
            ports: o
                .access
                .clone()
                .unwrap_or_else(|| vec![PortSpec::tcp(o.port)]),
            name: String::new(),
            duration: o.duration,
        };
        what = format!("the SPA request ({})", spa::describe(&req));
        for &ip in routers {
            if let Some(uri) = &o.resolve {
                match super::stun::query(uri, ip) {
                    Ok(mapped) => req.target = Target::Addr(mapped),
                    Err(e) => {
                        last_error = format!("{uri}: {e}");
                        continue;
                    }
                }
            }
            match spa::send(ip, o.spa_port, key, &req, 1) {
                Ok(packet) => {
                    sent += 1;
                    if o.verbose {
                        eprintln!(
                            "postern ssh-proxy: sent SPA request ({}) to {ip} udp:{}, {} bytes",
                            spa::describe(&req),
                            o.spa_port,
                            packet.len()
                        );
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
        }
    }
    if sent == 0 {
        return Err(format!("could not send {what}: {last_error}"));
    }
    Ok(what)
}

/// Tries `targets` in order, again and again with growing timeouts, until
/// one connects or `wait` has passed.
fn connect(targets: &[SocketAddr], wait: Duration, verbose: bool) -> io::Result<TcpStream> {
    let deadline = Instant::now() + wait;
    let mut step = FIRST_STEP;
    let mut last = io::Error::new(io::ErrorKind::TimedOut, "timed out");
    loop {
        let round = Instant::now();
        for &addr in targets {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(last);
            }
            match TcpStream::connect_timeout(&addr, step.min(left)) {
                Ok(s) => {
                    if verbose {
                        eprintln!("postern ssh-proxy: connected to {addr}");
                    }
                    return Ok(s);
                }
                Err(e) => {
                    if verbose {
                        eprintln!("postern ssh-proxy: {addr}: {e}");
                    }
                    last = e;
                }
            }
        }
        // Fast refusals (the guard's reset before the grant is live, or
        // nothing listening): don't spin.
        let left = deadline.saturating_duration_since(Instant::now());
        if round.elapsed() < RETRY_GAP {
            std::thread::sleep(RETRY_GAP.min(left));
        }
        step = (step * 2).min(MAX_STEP);
    }
}

/// Whether stdin and stdout are the same Unix socket: what OpenSSH gives a
/// `ProxyCommand` under `ProxyUseFdpass yes` (a socketpair end on both).
fn stdio_is_one_socket() -> bool {
    let stat = |fd: RawFd| -> Option<libc::stat> {
        // SAFETY: an all-zero stat is a valid value; fstat only writes into it.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: a plain syscall with a valid pointer.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
    };
    match (stat(0), stat(1)) {
        (Some(a), Some(b)) => {
            a.st_mode & libc::S_IFMT == libc::S_IFSOCK
                && (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        }
        _ => false,
    }
}

/// Sends `fd` over stdout with `SCM_RIGHTS` and one byte of data, as
/// OpenSSH's `mm_receive_fd` expects.
fn pass_fd(fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let byte = [0u8];
    let iov = [io::IoSlice::new(&byte)];
    let fds = [fd];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(1, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One direction of the relay: bytes read from one fd, not yet written to
/// the other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source reached end of file.
    eof: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: vec![0u8; RELAY_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Wants to read: empty buffer and no end of file yet.
    fn wants_read(&self) -> bool {
        self.is_empty() && !self.eof
    }

    fn fill(&mut self, from: BorrowedFd<'_>) -> io::Result<()> {
        match nix::unistd::read(from, &mut self.buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.start = 0;
                self.end = n;
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn drain(&mut self, to: BorrowedFd<'_>) -> io::Result<()> {
        match nix::unistd::write(to, &self.buf[self.start..self.end]) {
            Ok(n) => self.start += n,
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

fn nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Copies stdin to the socket and the socket to stdout until the socket
/// closes (or stdout does). End of file on stdin half-closes the socket.
fn relay(sock: &TcpStream) -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let (input, output, net) = (stdin.as_fd(), stdout.as_fd(), sock.as_fd());
    for fd in [input, output, net] {
        nonblocking(fd)?;
    }
    let mut up = Pipe::new();
    let mut down = Pipe::new();
    let mut half_closed = false;
    loop {
        if up.eof && up.is_empty() && !half_closed {
            let _ = sock.shutdown(std::net::Shutdown::Write);
            half_closed = true;
        }
        if down.eof && down.is_empty() {
            return Ok(());
        }
        let want = |on: bool, flag: PollFlags| if on { flag } else { PollFlags::empty() };
        let mut fds = [
            PollFd::new(input, want(up.wants_read(), PollFlags::POLLIN)),
            PollFd::new(
                net,
                want(!up.is_empty(), PollFlags::POLLOUT)
                    | want(down.wants_read(), PollFlags::POLLIN),
            ),
            PollFd::new(output, want(!down.is_empty(), PollFlags::POLLOUT)),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let (r_in, r_net, r_out) = (ready(0), ready(1), ready(2));
        let any = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if up.wants_read() && r_in.intersects(any) {
            up.fill(input)?;
        }
        if !up.is_empty() && r_net.intersects(PollFlags::POLLOUT | PollFlags::POLLERR) {
            up.drain(net)?;
        }
        if down.wants_read() && r_net.intersects(any) {
            down.fill(net)?;
        }
        if !down.is_empty()
            && r_out.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP)
        {
            down.drain(output)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn arguments() {
        let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let o = parse(&args(&format!(
            "--key {key} --wait 3 --fdpass router.lan 22"
        )))
        .unwrap();
        assert_eq!((o.host.as_str(), o.port), ("router.lan", 22));
        assert_eq!(
            (o.wait, o.handover),
            (Duration::from_secs(3), Handover::FdPass)
        );
        assert_eq!(
            (o.spa_port, o.duration),
            (conf::DEFAULT_PORT, conf::DEFAULT_DURATION)
        );
        let o = parse(&args("--knock tcp:7000,udp:8000 h 2222")).unwrap();
        assert_eq!(o.knock.unwrap(), [PortSpec::tcp(7000), PortSpec::udp(8000)]);
        for bad in [
            "h 22",
            &format!("--key {key} h"),
            &format!("--key {key} h 0"),
            &format!("--key {key} --wait 0 h 22"),
            &format!("--key {key} --bogus h 22"),
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_keep_the_resolvers_order() {
        let v = addresses("127.0.0.1", 22).unwrap();
        assert_eq!(v, [SocketAddr::from(([127, 0, 0, 1], 22))]);
        let v = addresses("[::1]", 22).unwrap();
        assert_eq!(v[0].ip(), "::1".parse::<IpAddr>().unwrap());
        let v = addresses("localhost", 2222).unwrap();
        assert!(v.iter().all(|a| a.port() == 2222 && a.ip().is_loopback()));
    }

    #[test]
    fn connect_gives_up_at_the_deadline() {
        // A closed port on loopback refuses at once: retried until the end.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let t = Instant::now();
        let e = connect(&[addr], Duration::from_millis(600), false).unwrap_err();
        let took = t.elapsed();
        // qemu-user (the cross runner sets POSTERN_QEMU_USER) hands back
        // getsockopt(SO_ERROR) untranslated, so the target's std cannot
        // name the host's errno there; on a real kernel it is a refusal.
        if std::env::var_os("POSTERN_QEMU_USER").is_none() {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        }
        assert!(took >= Duration::from_millis(500), "{took:?}");
        // And it connects once something listens.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        assert!(connect(&[open], Duration::from_secs(2), false).is_ok());
        // In order: past the refusing address to the next one.
        let s = connect(&[addr, open], Duration::from_secs(2), false).unwrap();
        assert_eq!(s.peer_addr().unwrap(), open);
    }
}
