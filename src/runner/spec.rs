//! What a command run is made of, and the config-time checks on it.
//!
//! Owns [`CommandSpec`] and [`RunAs`] and the pure checks the config loader
//! calls ([`check_argv`]) plus two that read the system at load time
//! ([`check_program`], [`resolve_user`]). Starts nothing.

use core::time::Duration;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;

/// Most arguments in a command's argv (the program included).
pub const MAX_ARGS: usize = 32;
/// Longest argument of a command's argv (bytes).
pub const MAX_ARG_LEN: usize = 1024;

/// What to run: built by the integrator from a `config command` section at
/// load/reload time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The section name, as SPA packets ask for it.
    pub name: String,
    /// `list exec`: the absolute program path, then its arguments, passed
    /// as they are (no shell). See [`check_argv`].
    pub argv: Vec<String>,
    /// `option timeout`: past it the command's process group gets SIGTERM,
    /// and SIGKILL [`super::KILL_GRACE`] later.
    pub timeout: Duration,
    /// `option user`: run as this user (its primary group, no supplementary
    /// groups) instead of the daemon's (root).
    pub user: Option<RunAs>,
}

/// A user resolved from the password database, to run a command as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user name, for the log.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

/// Checks a `list exec` argv: not empty, at most [`MAX_ARGS`] entries of at
/// most [`MAX_ARG_LEN`] bytes each, no NUL byte, the program an absolute
/// path (no `PATH` search happens, and no shell runs).
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("exec is empty: give the program's absolute path".into());
    };
    if argv.len() > MAX_ARGS {
        return Err(format!(
            "exec has {} entries, at most {MAX_ARGS} are allowed",
            argv.len()
        ));
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.len() > MAX_ARG_LEN {
            return Err(format!(
                "exec entry {} is {} bytes long, at most {MAX_ARG_LEN} are allowed",
                i + 1,
                arg.len()
            ));
        }
        if arg.contains('\0') {
            return Err(format!("exec entry {} contains a NUL byte", i + 1));
        }
    }
    if !program.starts_with('/') {
        return Err(format!(
            "exec program '{program}' is not an absolute path (no PATH search, no shell: \
             write e.g. /usr/bin/{program})"
        ));
    }
    Ok(())
}

/// Checks that `path` names an existing, executable regular file (following
/// symlinks). Reads the file system: for a warning at config load, since the
/// program may be installed later.
pub fn check_program(path: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("program '{path}': {e}"))?;
    if !meta.is_file() {
        return Err(format!("program '{path}' is not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("program '{path}' is not executable"));
    }
    Ok(())
}

/// Looks `name` up in the password database (`getpwnam_r`: /etc/passwd on
/// OpenWrt's musl).
pub fn resolve_user(name: &str) -> Result<RunAs, String> {
    let c_name = CString::new(name).map_err(|_| format!("user '{name}' contains a NUL byte"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid
        // value; getpwnam_r only writes into it.
        let mut entry: libc::passwd = unsafe { core::mem::zeroed() };
        let mut found: *mut libc::passwd = core::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name,
        // the entry, the buffer with its true length, the result pointer.
        let rc = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            let err = std::io::Error::from_raw_os_error(rc);
            return Err(format!("user '{name}': {err}"));
        }
        if found.is_null() {
            return Err(format!("unknown user '{name}' (not in /etc/passwd)"));
        }
        return Ok(RunAs {
            name: name.to_owned(),
            uid: entry.pw_uid,
            gid: entry.pw_gid,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argv_needs_an_absolute_program() {
        assert!(check_argv(&argv(&["/usr/bin/logger", "hello; rm -rf /"])).is_ok());
        assert!(check_argv(&argv(&["/bin/true", ""])).is_ok());
        let e = check_argv(&[]).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = check_argv(&argv(&["logger", "x"])).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = check_argv(&argv(&["./logger"])).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn argv_is_bounded_and_nul_free() {
        let mut many = argv(&["/bin/true"]);
        many.resize(MAX_ARGS, "x".into());
        assert!(check_argv(&many).is_ok());
        many.push("x".into());
        let e = check_argv(&many).unwrap_err();
        assert!(e.contains("at most 32"), "{e}");

        let long = "y".repeat(MAX_ARG_LEN);
        assert!(check_argv(&argv(&["/bin/true", &long])).is_ok());
        let longer = "y".repeat(MAX_ARG_LEN + 1);
        let e = check_argv(&argv(&["/bin/true", &longer])).unwrap_err();
        assert!(e.contains("entry 2") && e.contains("1025"), "{e}");

        let e = check_argv(&argv(&["/bin/true", "a\0b"])).unwrap_err();
        assert!(e.contains("entry 2") && e.contains("NUL"), "{e}");
    }

    #[test]
    fn programs_must_exist_and_be_executable() {
        assert!(check_program("/bin/sh").is_ok());
        let e = check_program("/nonexistent/postern-program").unwrap_err();
        assert!(e.contains("/nonexistent/postern-program"), "{e}");
        let e = check_program("/").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = std::env::temp_dir().join(format!("postern-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_program(plain.to_str().unwrap()).unwrap_err();
        assert!(e.contains("not executable"), "{e}");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_program(plain.to_str().unwrap()).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn users_resolve_from_the_password_database() {
        let root = resolve_user("root").unwrap();
        assert_eq!((root.uid, root.gid, root.name.as_str()), (0, 0, "root"));
        let e = resolve_user("postern-no-such-user").unwrap_err();
        assert!(e.contains("unknown user 'postern-no-such-user'"), "{e}");
        assert!(resolve_user("a\0b").is_err());
    }
}
