//! Dropping privileges once the daemon's sockets are open.
//!
//! Owns the choice of the capabilities the daemon keeps ([`needed`], pure:
//! a function of the configured commands and of whether it runs as root)
//! and the edge that drops the rest ([`drop_to`]: `prctl` and `capset`
//! through libc, no crate). Opens nothing and decides nothing about packets.
//!
//! What the running daemon needs: `CAP_NET_RAW` (reopening a capture socket
//! when its interface is re-created) and `CAP_NET_ADMIN` (every grant, ban
//! and forward is a netlink message to nf_tables or ipset).
//!
//! A daemon started as root becomes its own user ([`become_user`]: `option
//! user`, default [`DEFAULT_USER`]) with [`switch_user`], keeping only
//! [`NETWORK`]; its commands run through the privileged launcher
//! ([`crate::launcher`]), forked before the switch, so the daemon needs no
//! `CAP_SETUID`/`CAP_KILL` and no root. With `option user 'root'` (or no
//! such user on the system) it keeps uid 0 and [`drop_to`] narrows it to
//! [`NETWORK`] alike. A daemon started as another user (`setpriv`) has no
//! launcher: it runs commands without `option user` as itself and keeps
//! [`COMMAND_USERS`] for the others when it was given them ([`needed`]).
//!
//! Dropping means: no new privileges on `execve` (`PR_SET_NO_NEW_PRIVS`:
//! setuid and file-capability programs gain nothing), every other
//! capability removed from the bounding set (needs `CAP_SETPCAP`, which a
//! root daemon has and a non-root one started with just the two
//! capabilities has not — `PR_SET_NO_NEW_PRIVS` covers that case), the
//! ambient and inheritable sets cleared, and the permitted and effective
//! sets cut down to what is kept.
//!
//! One program the daemon runs itself needs a capability: the `nft` tool
//! (standalone table setup at reload and after a firewall restart). A uid 0
//! daemon's `nft` gets the bounding set on `execve`; a non-root daemon keeps
//! `CAP_NET_ADMIN` inheritable and ambient for it ([`ambient_for`]).
//! Commands never inherit it: the runner clears the ambient set in the
//! child before `execve`.

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
/// enabled command: whether it has `option user`), when it was started as
/// root (`started_as_root`) or not. Pure.
///
/// A daemon started as root runs every command through its privileged
/// launcher ([`crate::launcher`]) and keeps [`NETWORK`] only. One started
/// as another user runs a command without `option user` as itself (nothing
/// more needed) and one with `option user` only if it was given
/// [`COMMAND_USERS`].
pub fn needed(users: impl IntoIterator<Item = bool>, started_as_root: bool) -> Keep {
    if started_as_root {
        return Keep::Only(NETWORK);
    }
    let mut mask = NETWORK;
    if users.into_iter().any(|has_user| has_user) {
        mask |= COMMAND_USERS;
    }
    Keep::Only(mask)
}

/// The user a daemon started as root switches to when `config postern` has
/// no `option user`.
pub const DEFAULT_USER: &str = "postern";

/// Whom the daemon runs as after start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Become {
    /// Stays the user it was started as (not root; or root by choice or
    /// for want of the default user: see [`become_user`]).
    Stay,
    /// Switches to this user (its primary group, no supplementary groups).
    User {
        /// The user name, for the log.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

/// Decides whom a daemon started as `uid` runs as, given `option user`
/// (`configured`), why the setup may need uid 0 (`needs_root`, e.g. fw3
/// forwards, whose `iptables` takes root's lock file) and a password-database
/// `lookup` (name → uid, gid). Pure but for `lookup`. Returns the choice and
/// a warning to log, or an error that stops the start:
///
/// - not started as root: stays (the option is ignored, with a note);
/// - `option user 'root'`: stays root (capabilities still narrowed);
/// - `option user NAME`: NAME, which must exist and not be uid 0 (with a
///   warning when `needs_root`);
/// - no option: stays root with a warning when `needs_root`; else
///   [`DEFAULT_USER`] if it exists, else stays root with a warning (a
///   system without the packaged user keeps working).
pub fn become_user(
    uid: u32,
    configured: Option<&str>,
    needs_root: Option<&str>,
    lookup: impl Fn(&str) -> Result<(u32, u32), String>,
) -> Result<(Become, Option<String>), String> {
    if uid != 0 {
        let note = configured
            .map(|u| format!("option user '{u}' ignored: started as uid {uid}, not root"));
        return Ok((Become::Stay, note));
    }
    let (name, explicit) = match configured {
        Some("root") => return Ok((Become::Stay, None)),
        Some(name) => (name, true),
        None => (DEFAULT_USER, false),
    };
    if let (Some(why), false) = (needs_root, explicit) {
        return Ok((
            Become::Stay,
            Some(format!(
                "{why}: postern keeps uid 0 (with net_raw,net_admin only); set option user to switch anyway"
            )),
        ));
    }
    let warning = needs_root.map(|why| format!("{why}: it may fail as user {name}"));
    match lookup(name) {
        Ok((0, _)) => Err(format!(
            "option user '{name}' has uid 0: give an unprivileged user, or 'root' to stay root"
        )),
        Ok((uid, gid)) => Ok((
            Become::User {
                name: name.to_string(),
                uid,
                gid,
            },
            warning,
        )),
        Err(e) if explicit => Err(format!("option user: {e}")),
        Err(e) => Ok((
            Become::Stay,
            Some(format!(
                "{e}: postern keeps uid 0 (with net_raw,net_admin only); create the system \
                 user '{DEFAULT_USER}' (the OpenWrt package does) or set option user"
            )),
        )),
    }
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
    let bounding_narrowed = narrow_bounding(keep)?;
    set_capabilities(keep, ambient, bounding_narrowed)
}

/// `PR_SET_KEEPCAPS`: keep the permitted set across a switch away from uid 0.
const PR_SET_KEEPCAPS: libc::c_int = 8;

/// Switches this root process to `uid`/`gid` with no supplementary groups,
/// keeping only the capabilities in `keep` (as [`drop_to`]):
/// no-new-privileges, the bounding set narrowed (while still root),
/// `PR_SET_KEEPCAPS` around `setgroups([])`, `setresgid` and `setresuid`
/// (real, effective and saved ids all switched), then the permitted and
/// effective sets cut to `keep` and `ambient` raised. Checks the ids after
/// the switch. Irreversible; on error the caller must not go on (the
/// process may be half switched).
pub fn switch_user(uid: u32, gid: u32, keep: u64, ambient: u64) -> io::Result<Dropped> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    let bounding_narrowed = narrow_bounding(keep)?;
    clear_ambient()?;
    prctl(PR_SET_KEEPCAPS, 1)?;
    // SAFETY: setgroups(2) with no groups, setresgid(2)/setresuid(2) with
    // integer ids.
    unsafe {
        if libc::setgroups(0, core::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    prctl(PR_SET_KEEPCAPS, 0)?;
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: getres[ug]id(2) write into the valid locals.
    unsafe {
        libc::getresuid(&mut ruid, &mut euid, &mut suid);
        libc::getresgid(&mut rgid, &mut egid, &mut sgid);
    }
    if [ruid, euid, suid] != [uid; 3] || [rgid, egid, sgid] != [gid; 3] {
        return Err(io::Error::other(format!(
            "ids after the switch: uid {ruid}/{euid}/{suid}, gid {rgid}/{egid}/{sgid}"
        )));
    }
    set_capabilities(keep, ambient, bounding_narrowed)
}

/// Drops every capability but `keep` from the bounding set; false when it
/// may not (no `CAP_SETPCAP`).
fn narrow_bounding(keep: u64) -> io::Result<bool> {
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
    Ok(bounding_narrowed)
}

/// Cuts the permitted and effective sets to `keep` and leaves `ambient`
/// (within what is kept) inheritable and ambient.
fn set_capabilities(keep: u64, ambient: u64, bounding_narrowed: bool) -> io::Result<Dropped> {
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
        // Only for a daemon started as another user (no launcher).
        assert_eq!(needed([true, true], false), Keep::Only(0x30e0));
        assert_eq!(needed([true], false), Keep::Only(0x30e0));
    }

    #[test]
    fn a_daemon_started_as_root_keeps_the_network_only() {
        // Its commands, root or not, go through the launcher.
        assert_eq!(needed([true, false], true), Keep::Only(0x3000));
        assert_eq!(needed([false], true), Keep::Only(0x3000));
        assert_eq!(needed([false], false), Keep::Only(0x3000));
        assert_eq!(needed([false, true], false), Keep::Only(0x30e0));
    }

    fn passwd(name: &str) -> Result<(u32, u32), String> {
        match name {
            "postern" => Ok((101, 101)),
            "nobody" => Ok((65534, 65534)),
            "toor" => Ok((0, 0)),
            _ => Err(format!("unknown user '{name}' (not in /etc/passwd)")),
        }
    }

    #[test]
    fn root_becomes_the_postern_user_by_default() {
        let postern = Become::User {
            name: "postern".into(),
            uid: 101,
            gid: 101,
        };
        assert_eq!(become_user(0, None, None, passwd), Ok((postern, None)));
        let (b, w) = become_user(0, Some("nobody"), None, passwd).unwrap();
        assert_eq!(
            b,
            Become::User {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534
            }
        );
        assert_eq!(w, None);
    }

    #[test]
    fn a_missing_user_stops_the_start_unless_it_is_the_default() {
        let e = become_user(0, Some("ghost"), None, passwd).unwrap_err();
        assert!(e.contains("unknown user 'ghost'"), "{e}");
        let e = become_user(0, Some("toor"), None, passwd).unwrap_err();
        assert!(e.contains("uid 0"), "{e}");
        // No packaged user: stays root, loudly.
        let none = |_: &str| Err::<(u32, u32), _>("unknown user 'postern'".to_string());
        let (b, w) = become_user(0, None, None, none).unwrap();
        assert_eq!(b, Become::Stay);
        assert!(w.unwrap().contains("keeps uid 0"));
        // Root by choice: no warning.
        assert_eq!(
            become_user(0, Some("root"), None, none),
            Ok((Become::Stay, None))
        );
    }

    #[test]
    fn a_setup_that_needs_root_keeps_it_unless_a_user_is_given() {
        let why = Some("fw3 forwards run iptables");
        let (b, w) = become_user(0, None, why, passwd).unwrap();
        assert_eq!(b, Become::Stay);
        assert!(w
            .unwrap()
            .starts_with("fw3 forwards run iptables: postern keeps uid 0"));
        let (b, w) = become_user(0, Some("postern"), why, passwd).unwrap();
        assert!(matches!(b, Become::User { uid: 101, .. }));
        assert!(w.unwrap().contains("may fail as user postern"));
    }

    #[test]
    fn a_daemon_started_as_another_user_stays_it() {
        assert_eq!(
            become_user(65534, None, None, passwd),
            Ok((Become::Stay, None))
        );
        let (b, w) = become_user(65534, Some("postern"), None, passwd).unwrap();
        assert_eq!(b, Become::Stay);
        assert!(w.unwrap().contains("ignored"));
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
