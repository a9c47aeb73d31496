//! The daemon's control socket: `postern status` asks the running daemon.
//!
//! A unix stream socket (mode 0600: the daemon's user only), created with
//! that mode: the umask is 0177 while `bind` creates it, so there is no
//! moment at which others could connect (a `chmod` after `bind` leaves one). The client connects and sends
//! one line, `json` or `text`; the daemon answers with the status in that form
//! and closes. The daemon side never blocks its event loop for long: accepted
//! connections get a 200 ms read/write timeout. Both ends live here; the
//! status content is [`crate::status`]'s.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/postern.sock";
/// How long a client may take to send its request (or read the answer).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest request line read.
const MAX_REQUEST: u64 = 64;

/// The form of status a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `postern status --json`.
    Json,
    /// `postern status`.
    Text,
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
    let request = match line.trim() {
        "json" => Request::Json,
        "text" | "" => Request::Text,
        other => {
            let msg = format!("error: unknown request '{other}' (json or text)\n");
            return (&stream).write_all(msg.as_bytes());
        }
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

/// Asks the daemon listening at `path` for its status.
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
    let line = match request {
        Request::Json => "json\n",
        Request::Text => "text\n",
    };
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
}
