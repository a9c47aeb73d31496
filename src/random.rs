//! Random bytes from the kernel (`getrandom(2)`), for nonces, padding and keys.
//!
//! An edge: a syscall, used by the SPA sender and `postern keygen`, never by
//! the sans-IO core. Blocks only until the kernel's pool is initialised once
//! after boot, as `getrandom` with no flags does.

use std::io;

/// Fills `buf` with random bytes (retries on `EINTR` and short reads).
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: getrandom writes at most rest.len() bytes into memory we own.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io::Error::new(e.kind(), format!("getrandom: {e}")));
        }
        done += n as usize;
    }
    Ok(())
}

/// A random number in `0..=max`, by rejection sampling (no modulo bias).
pub fn below_or_eq(max: u8) -> io::Result<u8> {
    let span = u16::from(max) + 1;
    let limit = 256 - 256 % span;
    loop {
        let mut b = [0u8; 1];
        fill(&mut b)?;
        if u16::from(b[0]) < limit {
            return Ok((u16::from(b[0]) % span) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_with_different_bytes_each_time() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        fill(&mut []).unwrap();
    }

    #[test]
    fn bounded_numbers_stay_in_range() {
        for max in [0u8, 1, 63, 255] {
            for _ in 0..50 {
                assert!(below_or_eq(max).unwrap() <= max);
            }
        }
    }
}
