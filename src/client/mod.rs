//! The client side: sending knocks from a laptop or phone-like shell; SPA
//! requests are in [`spa`], the client's config file in [`conf`].
//!
//! A TCP knock is one SYN (a non-blocking connect that is abandoned at once);
//! a UDP knock is one empty datagram. Nothing waits for an answer: the router
//! answers knocks with silence or a reset either way.

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::io;
use std::net::{ToSocketAddrs, UdpSocket};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::port::{L4Proto, PortSpec};

pub mod conf;
pub mod modes;
pub mod spa;
pub mod ssh_proxy;
pub mod stun;

/// Resolves `host` (an address or a name) to one IP address.
pub fn resolve(host: &str) -> io::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve '{host}'")))
}

/// Sends one knock to `host`.
pub fn knock_once(host: IpAddr, knock: PortSpec) -> io::Result<()> {
    let target = SocketAddr::new(host, knock.port);
    match knock.proto {
        L4Proto::Udp => {
            let bind: SocketAddr = match host {
                IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
                IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
            };
            UdpSocket::bind(bind)?.send_to(&[], target).map(|_| ())
        }
        L4Proto::Tcp => send_syn(target),
    }
}

/// Sends a TCP SYN to `target` by starting a non-blocking connect and dropping it.
fn send_syn(target: SocketAddr) -> io::Result<()> {
    let family = match target {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = SockaddrStorage::from(target);
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        // The SYN is on its way; closing the socket now sends nothing more.
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(()),
        // A fast reset (closed port on loopback) still means the SYN went out.
        Err(nix::errno::Errno::ECONNREFUSED) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What `postern knock --verbose` prints before knocking: each knock, its
/// destination and what goes on the wire.
pub fn describe_knocks(host: &str, addr: IpAddr, knocks: &[PortSpec], delay: Duration) -> String {
    use core::fmt::Write as _;
    let mut out = format!(
        "knocking {host} = {addr}: {} knock(s), {} ms apart\n",
        knocks.len(),
        delay.as_millis()
    );
    for (i, k) in knocks.iter().enumerate() {
        let what = match k.proto {
            L4Proto::Tcp => "one TCP SYN",
            L4Proto::Udp => "one empty UDP datagram",
        };
        let _ = writeln!(out, "  {}/{}: {k} ({what})", i + 1, knocks.len());
    }
    out
}

/// Sends every knock in order, waiting `delay` between two knocks.
pub fn knock(host: IpAddr, knocks: &[PortSpec], delay: Duration) -> io::Result<()> {
    for (i, k) in knocks.iter().enumerate() {
        if i > 0 && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        knock_once(host, *k)
            .map_err(|e| io::Error::new(e.kind(), format!("knock {k} to {host}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn resolves_literals_and_localhost() {
        assert_eq!(
            resolve("192.0.2.1").unwrap(),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve("[2001:db8::1]").unwrap(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!(resolve("localhost").unwrap().is_loopback());
    }

    #[test]
    fn tcp_knock_reaches_a_listener_and_udp_knock_arrives() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = listener.local_addr().unwrap().port();
        let udp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_sock
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let udp = udp_sock.local_addr().unwrap().port();
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        knock(
            host,
            &[PortSpec::tcp(tcp), PortSpec::udp(udp)],
            Duration::from_millis(1),
        )
        .unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = udp_sock.recv_from(&mut buf).unwrap();
        assert_eq!(n, 0, "a UDP knock is an empty datagram");
        // On loopback the SYN completes a handshake in the kernel's backlog even
        // though we hung up at once: that proves it was sent. Wait at most 2 s.
        listener.set_nonblocking(true).unwrap();
        let accepted = (0..200).find_map(|_| match listener.accept() {
            Ok((_, peer)) => Some(peer),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                None
            }
        });
        assert!(accepted
            .expect("the TCP knock's SYN arrived")
            .ip()
            .is_loopback());
    }

    #[test]
    fn knocking_a_closed_port_is_not_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        knock_once("127.0.0.1".parse().unwrap(), PortSpec::tcp(port)).unwrap();
    }
}
