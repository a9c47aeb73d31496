//! [`Captures`]: the daemon's capture devices, whether they exist and are up
//! or not.
//!
//! Owns the life of each configured device's socket: opened at start if the
//! device exists, otherwise waited for (a PPPoE device does not exist before
//! the dial-up) and opened on the tick once it appears; closed when the
//! device disappears and reopened when one with its name comes back, or is
//! re-created under the same name (a new ifindex). A device that is down or
//! missing costs nothing: the pending error a device going down leaves on
//! the socket is taken ([`Captures::after_wake`]), and a socket that keeps
//! waking the loop with nothing to read is left out of the poll set until
//! the next tick, so no state of a device can make the loop spin. Link
//! changes are logged once each. The kernel's counters of every socket a
//! device had are carried over, so `postern status` counts since the start.
//!
//! All the work is on the tick (one `if_nametoindex` and one `SIOCGIFFLAGS`
//! per device a second) and on wake-ups; nothing here runs per packet.

use std::cell::Cell;
use std::io;

use log::{debug, info, warn};

use crate::capture::{Capture, SockFilter, Statistics};
use crate::status;

use super::{fail, DaemonError};

/// Wake-ups with nothing to read that one socket may cause in a tick before
/// it is polled no more until the next tick. The kernel wakes the loop only
/// for frames or an error (both taken at once), so this is a safety net: it
/// bounds the loop at this many wake-ups a second whatever a socket does.
pub(super) const IDLE_WAKES_PER_TICK: u32 = 50;

/// What was last logged about a device's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Down,
    Missing,
}

/// One configured capture device.
#[derive(Debug)]
struct Device {
    name: String,
    /// The socket, while the device exists.
    capture: Option<Capture>,
    /// Totals of the sockets closed so far (while `capture` is `None`).
    earlier: Statistics,
    link: Cell<Link>,
    /// Whether it ever had a socket (reopening it then resumes capture).
    captured: bool,
    /// Wake-ups with nothing read since the last tick.
    idle_wakes: Cell<u32>,
    /// Left out of the poll set until the next tick.
    parked: Cell<bool>,
}

/// Every configured capture device, open or waited for.
#[derive(Debug)]
pub(super) struct Captures {
    devices: Vec<Device>,
}

impl Captures {
    /// Opens a socket with `program` on each device that exists; one that does
    /// not is waited for (logged). Any other failure (no `CAP_NET_RAW`, a
    /// filter the kernel refuses) stops the start.
    pub(super) fn open(names: &[String], program: &[SockFilter]) -> Result<Captures, DaemonError> {
        let mut devices = Vec::with_capacity(names.len());
        for name in names {
            let (capture, link) = match Capture::open(name, program) {
                Ok(c) => {
                    let link = match c.link_up() {
                        Ok(false) => {
                            warn!("capture {name}: link down; waiting for it to come up");
                            Link::Down
                        }
                        _ => Link::Up,
                    };
                    (Some(c), link)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    warn!("capture {name}: no such interface yet; waiting for it to appear");
                    (None, Link::Missing)
                }
                Err(e) => return Err(fail(format!("capture on {name}: {e}"))),
            };
            devices.push(Device {
                name: name.clone(),
                captured: capture.is_some(),
                capture,
                earlier: Statistics::default(),
                link: Cell::new(link),
                idle_wakes: Cell::new(0),
                parked: Cell::new(false),
            });
        }
        Ok(Captures { devices })
    }

    /// The sockets to poll, in a stable order (the poll set is built from it
    /// and rebuilt whenever [`Captures::tick`] or [`Captures::after_wake`]
    /// says so).
    pub(super) fn polled(&self) -> impl Iterator<Item = &Capture> + '_ {
        self.devices
            .iter()
            .filter(|d| !d.parked.get())
            .filter_map(|d| d.capture.as_ref())
    }

    /// Every open socket.
    pub(super) fn open_sockets(&self) -> impl Iterator<Item = &Capture> + '_ {
        self.devices.iter().filter_map(|d| d.capture.as_ref())
    }

    /// After `capture` woke the loop and `read` frames were read from it:
    /// takes a pending error (a device that went down leaves one), and
    /// counts a wake-up that found nothing. True when the socket has now
    /// woken the loop too often for nothing and was left out of the poll set
    /// until the next tick: rebuild the poll set.
    pub(super) fn after_wake(&self, capture: &Capture, read: usize, error: bool) -> bool {
        if error {
            if let Some(e) = capture.take_error() {
                debug!("capture {}: {e}", capture.ifname());
                return false;
            }
        }
        if read > 0 {
            return false;
        }
        let Some(d) = self.devices.iter().find(|d| {
            d.capture
                .as_ref()
                .is_some_and(|c| core::ptr::eq(c, capture))
        }) else {
            return false;
        };
        let n = d.idle_wakes.get().saturating_add(1);
        d.idle_wakes.set(n);
        if n < IDLE_WAKES_PER_TICK {
            return false;
        }
        warn!(
            "capture {}: woke the loop {n} times with nothing to read; polled again on the next tick",
            d.name
        );
        d.parked.set(true);
        true
    }

    /// The tick's work that needs no change of sockets: reads the kernel's
    /// counters (warning about drops), logs links that went down or came up,
    /// and lets parked sockets be polled again. True when [`Captures::update`]
    /// must run and the poll set be rebuilt: a device appeared, disappeared
    /// or was re-created, or a socket was parked.
    pub(super) fn tick(&self) -> bool {
        let mut changed = false;
        for d in &self.devices {
            d.idle_wakes.set(0);
            changed |= d.parked.replace(false);
            if let Some(c) = &d.capture {
                note_drops(c);
            }
            match d.index_changed() {
                Some(true) => changed = true,
                Some(false) => d.link_changes(),
                None => {}
            }
        }
        changed
    }

    /// Opens the sockets of devices that appeared or were re-created (with
    /// the filter `program` makes, built only when one is needed) and closes
    /// those of devices that disappeared. Then rebuild the poll set.
    pub(super) fn update(&mut self, program: impl Fn() -> Vec<SockFilter>) {
        let mut filter: Option<Vec<SockFilter>> = None;
        for d in &mut self.devices {
            if d.index_changed() == Some(true) {
                if nix::net::if_::if_nametoindex(d.name.as_str()).is_ok() {
                    d.reopen(filter.get_or_insert_with(&program));
                } else {
                    d.gone();
                }
            }
        }
    }

    /// Attaches `program` to every open socket (reload); later opens build
    /// theirs from the configuration of the moment.
    pub(super) fn set_filter(&self, program: &[SockFilter]) {
        for c in self.open_sockets() {
            if let Err(e) = c.set_filter(program) {
                log::error!("capture {}: new filter not attached: {e}", c.ifname());
            }
        }
    }

    /// The `capture` counter group of `postern status`: every socket each
    /// device had, as of the last tick (at most a second old; reading here
    /// would hide new drops from the tick's warning).
    pub(super) fn counters(&self) -> status::CounterGroup {
        let total = self.devices.iter().fold(Statistics::default(), |t, d| {
            t.plus(d.capture.as_ref().map_or(d.earlier, Capture::statistics))
        });
        let open = self.open_sockets().count();
        let ring = self.open_sockets().filter(|c| c.uses_ring()).count();
        status::capture_group(total, ring, open - ring)
    }
}

impl Device {
    /// Whether the device's socket must change: `Some(true)` when the device
    /// appeared, disappeared or has a new ifindex, `Some(false)` when its
    /// socket is still the right one, `None` while it is missing.
    fn index_changed(&self) -> Option<bool> {
        let index = nix::net::if_::if_nametoindex(self.name.as_str()).ok();
        match (&self.capture, index) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => Some(true),
            (Some(c), Some(i)) => Some(i != c.ifindex()),
        }
    }

    /// Logs a link that went down or came up since the last tick.
    fn link_changes(&self) {
        let Some(c) = &self.capture else { return };
        let up = match c.link_up() {
            Ok(up) => up,
            Err(e) => {
                debug!("capture {}: link state: {e}", self.name);
                return;
            }
        };
        match (self.link.get(), up) {
            (Link::Down, true) => {
                info!("capture {}: link up; capturing again", self.name);
                self.link.set(Link::Up);
            }
            (Link::Up | Link::Missing, false) => {
                warn!(
                    "capture {}: link down; waiting for it to come up",
                    self.name
                );
                self.link.set(Link::Down);
            }
            (Link::Missing, true) => self.link.set(Link::Up),
            _ => {}
        }
    }

    /// The device has disappeared: closes its socket (keeping its counters;
    /// its ring's memory is freed) and waits.
    fn gone(&mut self) {
        let Some(c) = self.capture.take() else {
            return;
        };
        warn!(
            "capture {}: interface gone; waiting for it to come back",
            self.name
        );
        self.earlier = c.read_statistics().unwrap_or_else(|_| c.statistics());
        self.link.set(Link::Missing);
    }

    /// Opens the device again (it appeared, or has a new ifindex), carrying
    /// the counters over. On failure the old state stays and the next tick
    /// retries.
    fn reopen(&mut self, program: &[SockFilter]) {
        let new = match Capture::open(&self.name, program) {
            Ok(new) => new,
            Err(e) => {
                warn!("capture {}: cannot open yet: {e}", self.name);
                return;
            }
        };
        let earlier = match self.capture.take() {
            Some(old) => old.read_statistics().unwrap_or_else(|_| old.statistics()),
            None => core::mem::take(&mut self.earlier),
        };
        if self.captured {
            info!(
                "capture {}: interface re-created; capture resumed",
                self.name
            );
        } else {
            info!("capture {}: interface appeared; capture started", self.name);
        }
        self.captured = true;
        new.carry_statistics(earlier);
        self.capture = Some(new);
        self.link.set(Link::Missing);
        self.link_changes();
    }
}

/// Reads the kernel's capture counters (they reset on read; the sockets keep
/// totals) and warns when frames were dropped since the last reading: under a
/// flood on a busy router that is where a knock gets lost.
fn note_drops(c: &Capture) {
    let before = c.statistics().drops;
    match c.read_statistics() {
        Ok(s) if s.drops > before => warn!(
            "capture {}: the kernel dropped {} frame(s) that arrived faster than they were read ({} dropped since start)",
            c.ifname(),
            s.drops - before,
            s.drops
        ),
        Ok(_) => {}
        Err(e) => debug!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::bpf;
    use crate::port::PortSpec;

    fn root_or_skip(test: &str) -> bool {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs root in CI (CI=true)"
        );
        eprintln!("\n*** SKIPPED (needs root): daemon::captures::tests::{test} ***\n");
        false
    }

    #[test]
    fn a_socket_that_keeps_waking_for_nothing_is_parked_until_the_tick() {
        if std::env::var_os("POSTERN_QEMU_USER").is_some() || !root_or_skip("parked") {
            return;
        }
        crate::demo::in_new_netns(|| {
            let program = bpf::build(&[PortSpec::udp(5000)], true);
            let names = ["lo".to_string(), "pw-absent0".to_string()];
            // (Opened while lo is down: nothing pending after the open.)
            let c = Captures::open(&names, &program).expect("open");
            assert_eq!(
                c.open_sockets().count(),
                1,
                "the absent device is waited for"
            );
            let lo = c.polled().next().expect("lo is polled");
            // The device goes down: the kernel leaves ENETDOWN on the socket,
            // and poll reports it at once, every time, until taken.
            let ip = |state: &str| {
                let st = std::process::Command::new("ip")
                    .args(["link", "set", "lo", state])
                    .status()
                    .expect("ip");
                assert!(st.success());
            };
            ip("up");
            ip("down");
            let ready = |c: &Capture| {
                let mut fds = [nix::poll::PollFd::new(c.fd(), nix::poll::PollFlags::POLLIN)];
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).expect("poll")
            };
            assert_eq!(ready(lo), 1, "POLLERR pending");
            assert_eq!(ready(lo), 1, "still pending: poll does not take it");
            assert!(!c.after_wake(lo, 0, true));
            assert_eq!(ready(lo), 0, "taken: the socket sleeps");
            // The wake-up for the error did not count as one for nothing.
            for _ in 1..IDLE_WAKES_PER_TICK {
                assert!(!c.after_wake(lo, 0, false));
            }
            // Frames read: never parked, whatever the count.
            assert!(!c.after_wake(lo, 3, false));
            assert!(c.after_wake(lo, 0, false), "parked at the limit");
            assert_eq!(c.polled().count(), 0);
            assert_eq!(c.open_sockets().count(), 1);
            // The tick lets it be polled again (and asks for a new poll set).
            assert!(c.tick());
            assert_eq!(c.polled().count(), 1);
            assert!(!c.tick(), "nothing changed since");
        })
        .expect("netns");
    }
}
