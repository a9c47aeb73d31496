//! The daemon–launcher socket: an `AF_UNIX` `SOCK_SEQPACKET` pair (one
//! message per datagram, in order, never merged or split), with an optional
//! file descriptor passed alongside a message (`SCM_RIGHTS`).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// One end of the pair.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// One message received.
#[derive(Debug)]
pub struct Received {
    /// Its length; 0 when the other end closed.
    pub len: usize,
    /// The descriptor that came with it, if any.
    pub fd: Option<OwnedFd>,
}

impl Channel {
    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Sends `msg` (and `fd`), without blocking when `nonblocking`.
    pub fn send(&self, msg: &[u8], fd: Option<RawFd>, nonblocking: bool) -> io::Result<()> {
        let iov = [IoSlice::new(msg)];
        let fds;
        let cmsgs: &[ControlMessage<'_>] = match fd {
            Some(fd) => {
                fds = [fd];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        let mut flags = MsgFlags::MSG_NOSIGNAL;
        if nonblocking {
            flags |= MsgFlags::MSG_DONTWAIT;
        }
        loop {
            match sendmsg::<()>(self.fd.as_raw_fd(), &iov, cmsgs, flags, None) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message into `buf` without blocking (`WouldBlock` when
    /// none is queued). A message longer than `buf` is refused as
    /// `InvalidData` (and dropped).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: the kernel just installed `raw` in this
                    // process for us; nobody else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too long",
            ));
        }
        Ok(Received { len: msg.bytes, fd })
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn messages_and_a_file_cross_whole() {
        let (a, b) = Channel::pair().unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            b.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.send(b"one", None, true).unwrap();
        a.send(b"two", None, true).unwrap();
        let mut file = tempfile();
        file.write_all(b"config postern\n").unwrap();
        a.send(b"config", Some(file.as_raw_fd()), false).unwrap();
        let got = b.recv(&mut buf).unwrap();
        assert_eq!((&buf[..got.len], got.fd.is_none()), (&b"one"[..], true));
        let got = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"two");
        let got = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"config");
        let mut passed = std::fs::File::from(got.fd.unwrap());
        passed.rewind().unwrap();
        let mut text = String::new();
        passed.read_to_string(&mut text).unwrap();
        assert_eq!(text, "config postern\n");
        // Too long for the buffer: refused, not cut.
        a.send(&[b'x'; 32], None, true).unwrap();
        assert_eq!(
            b.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        drop(a);
        assert_eq!(b.recv(&mut buf).unwrap().len, 0, "end of file");
    }

    fn tempfile() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("postern-channel-{}", std::process::id()));
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
