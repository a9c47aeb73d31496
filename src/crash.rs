//! A last line on stderr (syslog, under procd) when postern dies of a fatal
//! signal. Router builds stop a panic at once (`panic = "immediate-abort"`,
//! scripts/cross.sh: no message, no formatting, a trap instruction), so
//! without this a bug would end the daemon without a word. The line names
//! the signal and the address it reports. `scripts/cross.sh TARGET
//! breakdown` builds the same sources with their symbols; `addr2line -f -e
//! target/size-symbols/TRIPLE/release/postern ADDRESS` then names the
//! function (`si_addr`: the faulting instruction for a trap, the address
//! touched for a memory fault).

/// The signals a bug ends a process with: a trap (a panic of an
/// immediate-abort build), an illegal instruction (the same on x86),
/// `abort()`, and memory faults.
const FATAL: [libc::c_int; 6] = [
    libc::SIGTRAP,
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
];

/// Installs the handler for every fatal signal. It runs once per signal
/// (`SA_RESETHAND`): it writes the line and raises the signal again, which
/// ends the process as it would have without the handler (with a core dump
/// where enabled).
pub fn install() {
    for sig in FATAL {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler only formats into a stack buffer and calls write(2), both
        // async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_fatal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_NODEFER;
            libc::sigaction(sig, &action, core::ptr::null_mut());
        }
    }
}

extern "C" fn on_fatal(sig: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_addr() as usize }
    };
    let mut buf = [0u8; 160];
    let line = fatal_line(&mut buf, sig, addr);
    // SAFETY: writes initialised bytes of a live buffer to fd 2, then
    // raises the signal again: its action is the default now
    // (SA_RESETHAND) and it is not blocked (SA_NODEFER), so it ends the
    // process as it would have without the handler.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::raise(sig);
    }
}

/// `postern 0.1.0: fatal: SIGTRAP at 0x0040a1b4 (a panic or a bug; please report it)`:
/// formatted without allocating or locking (it runs in a signal handler).
pub fn fatal_line(buf: &mut [u8; 160], sig: libc::c_int, addr: usize) -> &[u8] {
    let name = match sig {
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        _ => "a fatal signal",
    };
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(concat!("postern ", env!("CARGO_PKG_VERSION"), ": fatal: ").as_bytes());
    put(name.as_bytes());
    put(b" at 0x");
    const DIGITS: usize = 2 * core::mem::size_of::<usize>();
    let mut hex = [0u8; DIGITS];
    for (i, digit) in hex.iter_mut().enumerate() {
        let shift = 4 * (DIGITS - 1 - i);
        *digit = b"0123456789abcdef"[(addr >> shift) & 0xf];
    }
    put(&hex);
    put(b" (a panic or a bug; please report it)\n");
    &buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_signal_address_and_version() {
        let mut buf = [0u8; 160];
        let line = fatal_line(&mut buf, libc::SIGTRAP, 0x40a1b4);
        let want = format!(
            "postern {}: fatal: SIGTRAP at 0x{:0w$x} (a panic or a bug; please report it)\n",
            env!("CARGO_PKG_VERSION"),
            0x40a1b4,
            w = 2 * core::mem::size_of::<usize>()
        );
        assert_eq!(std::str::from_utf8(line).unwrap(), want);
    }

    /// A child that installs the handler and dies of SIGILL (what a trap
    /// is on x86) leaves the line on its stderr and still dies of the signal.
    #[test]
    fn a_fatal_signal_leaves_one_line_and_still_kills() {
        let mut fds = [0; 2];
        // SAFETY: pipe() fills two descriptors; the child calls only
        // async-signal-safe functions (dup2, sigaction, raise, _exit)
        // before it dies.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::dup2(fds[1], 2);
                install();
                libc::raise(libc::SIGILL);
                libc::_exit(0);
            }
            libc::close(fds[1]);
            let mut out = Vec::new();
            let mut chunk = [0u8; 256];
            loop {
                let n = libc::read(fds[0], chunk.as_mut_ptr().cast(), chunk.len());
                if n <= 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n as usize]);
            }
            libc::close(fds[0]);
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFSIGNALED(status), "status {status:#x}");
            assert_eq!(libc::WTERMSIG(status), libc::SIGILL);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(": fatal: SIGILL at 0x"), "{text}");
            // Under qemu-user the emulator adds its own "qemu: uncaught
            // target signal" line to the same stderr; postern writes one.
            let ours = text.lines().filter(|l| !l.starts_with("qemu: ")).count();
            assert_eq!(ours, 1, "{text}");
        }
    }
}
