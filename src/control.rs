//! The daemon's control socket: `postern status` asks the running daemon.
//!
//! A unix stream socket (mode 0600: the daemon's user only), created with
//! that mode: the umask is 0177 while `bind` creates it, so there is no
//! moment at which others could connect (a `chmod` after `bind` leaves one). The client connects and sends
//! one line, `json` or `text`; the daemon answers with the status in that form
//! and closes. The daemon side never blocks its event loop for long: accepted
//! connections get a 200 ms read/write timeout. Both ends live here; the
//! status content is [`crate::status`]'s.
//!
//! Requests (one line each): `json`, `text` (or empty), `revoke ADDR
//! PROTO:PORT` (ends a live grant now) and `unban NET` (lifts the bans
//! within NET now). Only the daemon's own user can connect, so whoever may
//! ask for the status may also revoke and unban (LuCI through its rpcd
//! plugin, which runs as root).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cidr::Cidr;
use crate::port::PortSpec;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/postern.sock";
/// How long a client may take to send its request (or read the answer).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest request line read.
const MAX_REQUEST: u64 = 128;

/// What a client asks the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `postern status --json`.
    Json,
    /// `postern status`.
    Text,
    /// `postern revoke ADDR PROTO:PORT`: end the live grant of ADDR to the port.
    Revoke(IpAddr, PortSpec),
    /// `postern unban NET`: lift every live ban within NET.
    Unban(Cidr),
    /// `postern peer-sync`: ask the peer routers for their live state
    /// (keepalived's `NOTIFY_MASTER` hook calls it).
    PeerSync,
}

impl Request {
    /// Parses one request line (without its newline); the error names the
    /// requests known.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        match words.as_slice() {
            ["json"] => Ok(Request::Json),
            ["text"] | [] => Ok(Request::Text),
            ["peer-sync"] => Ok(Request::PeerSync),
            ["revoke", addr, port] => {
                let addr = addr
                    .parse::<IpAddr>()
                    .map_err(|_| format!("revoke: '{addr}' is not an IP address"))?;
                let port = port
                    .parse::<PortSpec>()
                    .map_err(|e| format!("revoke: '{port}': {e}"))?;
                Ok(Request::Revoke(addr, port))
            }
            ["unban", net] => net
                .parse::<Cidr>()
                .map(Request::Unban)
                .map_err(|e| format!("unban: '{net}': {e}")),
            _ => Err(format!(
                "unknown request '{}' (json, text, revoke ADDR PROTO:PORT, unban NET, peer-sync)",
                line.trim()
            )),
        }
    }

    /// The line a client sends for this request.
    pub fn to_line(&self) -> String {
        match self {
            Request::Json => "json\n".to_string(),
            Request::Text => "text\n".to_string(),
            Request::Revoke(addr, port) => format!("revoke {addr} {port}\n"),
            Request::Unban(net) => format!("unban {net}\n"),
            Request::PeerSync => "peer-sync\n".to_string(),
        }
    }
}

/// The daemon's listening socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (replacing a stale socket file), mode 0600 from its
    /// creation (umask 0177 around `bind`, then restored), non-blocking.
    pub fn bind(path: &Path) -> io::Result<ControlSocket> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = bind_private(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers every pending client with `answer(request)`.
    pub fn serve_pending(&self, mut answer: impl FnMut(Request) -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = serve_one(stream, &mut answer) {
                log::debug!("control: client dropped: {e}");
            }
        }
    }
}

/// `bind` with umask 0177 (the socket is created mode 0600), the previous
/// umask restored after. The umask is per process: the daemon binds before
/// it starts any thread or child.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    bound
}

fn serve_one(stream: UnixStream, answer: &mut impl FnMut(Request) -> String) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let request = match Request::parse(&line) {
        Ok(r) => r,
        Err(e) => return (&stream).write_all(format!("error: {e}\n").as_bytes()),
    };
    (&stream).write_all(answer(request).as_bytes())
}

impl AsFd for ControlSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `request` to the daemon listening at `path`; its answer (for
/// revoke and unban a line starting `ok:` or `error:`).
pub fn query(path: &Path, request: Request) -> io::Result<String> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the daemon at {}: {e} (is postern running?)",
                path.display()
            ),
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let line = request.to_line();
    // MSG_NOSIGNAL: a daemon that closed the connection is an error to
    // report, not a SIGPIPE (the CLI lets SIGPIPE end it on a closed stdout).
    let sent = nix::sys::socket::send(
        stream.as_raw_fd(),
        line.as_bytes(),
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )
    .map_err(io::Error::from)?;
    if sent != line.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the daemon took part of the request",
        ));
    }
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn request_answer_and_cleanup() {
        let path = std::env::temp_dir().join(format!("postern-ctl-{}.sock", std::process::id()));
        let umask = || {
            let m = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            nix::sys::stat::umask(m);
            m
        };
        let before = umask();
        let sock = ControlSocket::bind(&path).unwrap();
        assert_eq!(umask(), before, "the process umask is restored after bind");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let p = path.clone();
        let client = std::thread::spawn(move || {
            (
                query(&p, Request::Json).unwrap(),
                query(&p, Request::Text).unwrap(),
            )
        });
        let mut served = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while served.len() < 2 && std::time::Instant::now() < deadline {
            sock.serve_pending(|r| {
                served.push(r);
                format!("{r:?}\n")
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        let (json, text) = client.join().unwrap();
        assert_eq!((json.as_str(), text.as_str()), ("Json\n", "Text\n"));
        assert_eq!(served, [Request::Json, Request::Text]);
        // A second daemon replaces a stale socket file; dropping removes it.
        drop(sock);
        assert!(!path.exists());
        let err = query(&path, Request::Json).unwrap_err();
        assert!(err.to_string().contains("is postern running?"));
    }

    #[test]
    fn requests_parse_and_round_trip() {
        let cases = [
            "json",
            "text",
            "revoke 192.0.2.7 tcp:22",
            "revoke 2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff udp:65535",
            "unban 192.0.2.7/32",
            "unban 2001:db8::/64",
        ];
        for line in cases {
            let r = Request::parse(line).unwrap();
            assert_eq!(r.to_line(), format!("{line}\n"));
            assert_eq!(Request::parse(&r.to_line()), Ok(r));
            assert!(r.to_line().len() as u64 <= MAX_REQUEST);
        }
        assert_eq!(Request::parse(""), Ok(Request::Text));
        assert_eq!(
            Request::parse("unban 192.0.2.7"),
            Ok(Request::Unban("192.0.2.7/32".parse().unwrap()))
        );
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        for (line, why) in [
            ("revoke", "unknown request"),
            ("revoke 192.0.2.7", "unknown request"),
            ("revoke host tcp:22", "not an IP address"),
            ("revoke 192.0.2.7 tcp:0", "revoke: 'tcp:0'"),
            ("revoke 192.0.2.7 tcp:22 extra", "unknown request"),
            ("unban 192.0.2.0/33", "unban: '192.0.2.0/33'"),
            ("unban 192.0.2.1/24", "unban: '192.0.2.1/24'"),
            ("unban", "unknown request"),
            ("shutdown", "unknown request"),
        ] {
            let err = Request::parse(line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }
}
