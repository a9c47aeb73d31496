//! Dropping privileges once the daemon's sockets are open.
//!
//! Owns the choice of the capabilities the daemon keeps ([`needed`], pure:
//! a function of the configured commands and of whether it runs as root)
//! and the edge that drops the rest ([`drop_to`]: `prctl` and `capset`
//! through libc, no crate). Opens nothing and decides nothing about packets.
//!
//! What the running daemon needs: `CAP_NET_RAW` (reopening a capture socket
//! when its interface is re-created) and `CAP_NET_ADMIN` (every grant, ban
//! and forward is a netlink message to nf_tables or ipset). SPA commands add
//! to that:
//!
//! - commands that all have `option user`: `CAP_SETUID` and `CAP_SETGID`
//!   (to become that user in the child) and `CAP_KILL` (to stop the
//!   command's process group at its timeout: it no longer runs as our uid);
//! - a command without `option user` runs as root with root's powers (a
//!   reboot, a service restart): the daemon then keeps everything, since a
//!   root process without capabilities could not start one. Such a
//!   configuration makes the daemon as powerful as root; prefer `option user`.
//!
//! Dropping means: no new privileges on `execve` (`PR_SET_NO_NEW_PRIVS`:
//! setuid and file-capability programs gain nothing), every other
//! capability removed from the bounding set (so that a child running as
//! uid 0 does not get root's capabilities back on `execve`; needs
//! `CAP_SETPCAP`, which a root daemon has and a non-root one started with
//! just the two capabilities has not — `PR_SET_NO_NEW_PRIVS` covers that
//! case), the ambient and inheritable sets cleared, and the permitted and
//! effective sets cut down to what is kept. The uid is not changed: a root
//! daemon stays uid 0 (its own files — the config, the state directory,
//! the control socket — stay readable and writable by owner), and a daemon
//! started as another user (`setpriv`, procd `user`) stays that user.
//!
//! One program the daemon runs itself needs a capability: the `nft` tool
//! (standalone table setup at reload and after a firewall restart). A root
//! daemon's `nft` gets the bounding set on `execve` (uid 0); a non-root
//! daemon keeps `CAP_NET_ADMIN` inheritable and ambient for it
//! ([`ambient_for`]). Commands never inherit it: the runner clears the
//! ambient set in the child before `execve`.

use std::io;

/// `CAP_KILL`: signal processes of other users (a command's process group).
pub const CAP_KILL: u32 = 5;
/// `CAP_SETGID`: set the gid (and drop supplementary groups) of a command.
pub const CAP_SETGID: u32 = 6;
/// `CAP_SETUID`: set the uid of a command.
pub const CAP_SETUID: u32 = 7;
/// `CAP_SETPCAP`: drop capabilities from the bounding set.
pub const CAP_SETPCAP: u32 = 8;
/// `CAP_NET_ADMIN`: nf_tables and ipset over netlink.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: AF_PACKET capture sockets.
pub const CAP_NET_RAW: u32 = 13;

/// The bit of capability `cap` in a 64-bit capability mask (as in
/// `/proc/PID/status`'s `CapEff`).
pub const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// What every daemon keeps: `CAP_NET_RAW | CAP_NET_ADMIN` (`0x3000`).
pub const NETWORK: u64 = bit(CAP_NET_RAW) | bit(CAP_NET_ADMIN);
/// What a daemon whose commands all run as other users keeps besides
/// [`NETWORK`]: `CAP_SETUID | CAP_SETGID | CAP_KILL` (`0xe0`).
pub const COMMAND_USERS: u64 = bit(CAP_SETUID) | bit(CAP_SETGID) | bit(CAP_KILL);

/// The privileges the daemon keeps after start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Only these capabilities (a mask of [`bit`]s).
    Only(u64),
    /// Everything it started with: a command runs as root.
    Everything,
}

impl Keep {
    /// True when a command that runs as `user` (`None`: as the daemon's own
    /// user) can be started by a daemon that kept this much; `daemon_is_root`
    /// says whether the daemon runs as uid 0.
    pub fn can_run(self, has_user: bool, daemon_is_root: bool) -> bool {
        match self {
            Keep::Everything => true,
            // A root daemon's root command would run with the kept
            // capabilities only: refused rather than half-working.
            Keep::Only(_) if !has_user => !daemon_is_root,
            Keep::Only(mask) => mask & COMMAND_USERS == COMMAND_USERS,
        }
    }
}

/// What the daemon keeps for commands that run as `users` (one entry per
/// enabled command: whether it has `option user`), when it runs as root
/// (`daemon_is_root`) or not. Pure.
///
/// A non-root daemon runs a command without `option user` as itself, so
/// such a command needs nothing more; a root daemon's needs everything.
pub fn needed(users: impl IntoIterator<Item = bool>, daemon_is_root: bool) -> Keep {
    let mut mask = NETWORK;
    for has_user in users {
        if has_user {
            mask |= COMMAND_USERS;
        } else if daemon_is_root {
            return Keep::Everything;
        }
    }
    Keep::Only(mask)
}

/// What a daemon keeps in its ambient (and inheritable) set so that the
/// `nft` tool it runs has `CAP_NET_ADMIN`: nothing for a root daemon (uid
/// 0 gets the bounding set on `execve`), `CAP_NET_ADMIN` otherwise. Pure.
pub fn ambient_for(daemon_is_root: bool) -> u64 {
    if daemon_is_root {
        0
    } else {
        bit(CAP_NET_ADMIN)
    }
}

/// The capability sets of this process after [`drop_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The effective set.
    pub effective: u64,
    /// The permitted set.
    pub permitted: u64,
    /// The ambient set (capabilities the programs it runs keep).
    pub ambient: u64,
    /// False when the bounding set could not be narrowed (no `CAP_SETPCAP`).
    pub bounding_narrowed: bool,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `PR_CAP_AMBIENT` and its `PR_CAP_AMBIENT_CLEAR_ALL` (Linux 4.3+).
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

/// Clears this process's ambient capability set (a no-op on kernels
/// without one). Async-signal-safe: the runner calls it between `fork` and
/// `execve`.
pub fn clear_ambient() -> io::Result<()> {
    match prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(e),
        _ => Ok(()),
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a valid header and room for the two words of
    // version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(2) with a valid header and the two words of version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | u64::from(high) << 32
}

/// The effective and permitted sets of this process.
pub fn current() -> io::Result<(u64, u64)> {
    let d = capget()?;
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
    ))
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl(2) with integer arguments only.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps only the capabilities in `keep` (those of them this process has):
/// sets no-new-privileges, narrows the bounding set when it may, cuts the
/// permitted and effective sets, and leaves only `ambient` (within what is
/// kept) in the inheritable and ambient sets. Irreversible. An error leaves
/// the process with at most what it had.
pub fn drop_to(keep: u64, ambient: u64) -> io::Result<Dropped> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    let mut bounding_narrowed = true;
    // Capabilities past the kernel's last one give EINVAL: the end.
    for cap in 0..64u32 {
        if keep & bit(cap) != 0 {
            continue;
        }
        // SAFETY: prctl(2) with integer arguments only.
        let held = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if held < 0 {
            break;
        }
        if held == 0 {
            continue;
        }
        match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                bounding_narrowed = false;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    clear_ambient()?;
    let (_, permitted) = current()?;
    let kept = keep & permitted;
    let inheritable = ambient & kept;
    let data = [
        CapData {
            effective: kept as u32,
            permitted: kept as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (kept >> 32) as u32,
            permitted: (kept >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    capset(&data)?;
    let mut raised = 0;
    for cap in (0..64u32).filter(|&c| inheritable & bit(c) != 0) {
        // Kernels before 4.3 have no ambient set: the tool then lacks it.
        // SAFETY: prctl(2) with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                PR_CAP_AMBIENT,
                PR_CAP_AMBIENT_RAISE,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc == 0 {
            raised |= bit(cap);
        }
    }
    let (effective, permitted) = current()?;
    Ok(Dropped {
        effective,
        permitted,
        ambient: raised,
        bounding_narrowed,
    })
}

/// Capability names of a mask, lower-case, comma-separated (`net_admin,net_raw`).
pub fn names(mask: u64) -> String {
    const NAMES: [&str; 41] = [
        "chown",
        "dac_override",
        "dac_read_search",
        "fowner",
        "fsetid",
        "kill",
        "setgid",
        "setuid",
        "setpcap",
        "linux_immutable",
        "net_bind_service",
        "net_broadcast",
        "net_admin",
        "net_raw",
        "ipc_lock",
        "ipc_owner",
        "sys_module",
        "sys_rawio",
        "sys_chroot",
        "sys_ptrace",
        "sys_pacct",
        "sys_admin",
        "sys_boot",
        "sys_nice",
        "sys_resource",
        "sys_time",
        "sys_tty_config",
        "mknod",
        "lease",
        "audit_write",
        "audit_control",
        "setfcap",
        "mac_override",
        "mac_admin",
        "syslog",
        "wake_alarm",
        "block_suspend",
        "audit_read",
        "perfmon",
        "bpf",
        "checkpoint_restore",
    ];
    let list: Vec<String> = (0..64u32)
        .filter(|&c| mask & bit(c) != 0)
        .map(|c| match NAMES.get(c as usize) {
            Some(n) => (*n).to_string(),
            None => format!("cap_{c}"),
        })
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_commands_only_the_network_capabilities_are_kept() {
        assert_eq!(NETWORK, 0x3000);
        assert_eq!(needed([], true), Keep::Only(0x3000));
        assert_eq!(needed([], false), Keep::Only(0x3000));
    }

    #[test]
    fn commands_with_users_keep_setuid_setgid_and_kill() {
        assert_eq!(COMMAND_USERS, 0xe0);
        assert_eq!(needed([true, true], true), Keep::Only(0x30e0));
        assert_eq!(needed([true], false), Keep::Only(0x30e0));
    }

    #[test]
    fn a_root_command_keeps_everything_only_for_a_root_daemon() {
        assert_eq!(needed([true, false], true), Keep::Everything);
        assert_eq!(needed([false], false), Keep::Only(0x3000));
        assert_eq!(needed([false, true], false), Keep::Only(0x30e0));
    }

    #[test]
    fn what_a_kept_set_can_run() {
        let net = Keep::Only(NETWORK);
        let users = Keep::Only(NETWORK | COMMAND_USERS);
        // Root daemon.
        assert!(!net.can_run(true, true));
        assert!(!net.can_run(false, true));
        assert!(users.can_run(true, true));
        assert!(!users.can_run(false, true));
        assert!(Keep::Everything.can_run(false, true));
        // Non-root daemon: commands without a user run as the daemon.
        assert!(net.can_run(false, false));
        assert!(!net.can_run(true, false));
        assert!(users.can_run(true, false));
    }

    #[test]
    fn only_a_non_root_daemon_keeps_net_admin_ambient_for_nft() {
        assert_eq!(ambient_for(true), 0);
        assert_eq!(ambient_for(false), 0x1000);
    }

    #[test]
    fn names_of_masks() {
        assert_eq!(names(0x3000), "net_admin,net_raw");
        assert_eq!(names(0x30e0), "kill,setgid,setuid,net_admin,net_raw");
        assert_eq!(names(0), "none");
        assert_eq!(names(1 << 50), "cap_50");
    }

    #[test]
    fn current_reads_this_process() {
        let (effective, permitted) = current().unwrap();
        assert_eq!(effective & !permitted, 0, "effective within permitted");
    }
}
