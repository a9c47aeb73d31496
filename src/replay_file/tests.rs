//! The state file: text, atomic and safe writes, the directory check, the guard.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn e(n: u8, timestamp: u64) -> ReplayEntry {
    ReplayEntry {
        nonce: [n; NONCE_LEN],
        timestamp,
    }
}

fn saved(client: Option<&str>, entry: ReplayEntry) -> SavedEntry {
    SavedEntry {
        client: client.map(str::to_string),
        entry,
    }
}

/// A fresh directory of this test (mode 0700).
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("postern-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn text_round_trip() {
    let record = ReplayRecord {
        floor: 99,
        entries: vec![
            saved(Some("laptop"), e(0xab, 1_800_000_000)),
            saved(None, e(1, 7)),
        ],
    };
    let text = render("b-1", &record);
    assert_eq!(
        text,
        "postern-spa-replay 2\nboot b-1\nfloor 99\n\
         1800000000 abababababababababababababababababababababababab laptop\n\
         7 010101010101010101010101010101010101010101010101 -\n"
    );
    assert_eq!(parse(&text, "b-1"), Ok(Some(record)));
    assert_eq!(parse(&text, "b-2"), Ok(None), "another boot");
    assert_eq!(parse(&text, ""), Ok(None));
}

#[test]
fn version_1_files_are_read_with_floor_0() {
    let text = "postern-spa-replay 1\nboot b\n7 010101010101010101010101010101010101010101010101\n";
    assert_eq!(
        parse(text, "b"),
        Ok(Some(ReplayRecord {
            floor: 0,
            entries: vec![saved(None, e(1, 7))]
        }))
    );
}

#[test]
fn malformed_text_is_an_error() {
    let id = "01".repeat(24);
    for bad in [
        String::new(),
        "postern-spa-replay 2\n".into(),
        "postern-spa-replay 2\nboot b\n".into(),
        "postern-spa-replay 2\nboot b\nfloor x\n".into(),
        "postern-spa-replay 2\nboot b\nfloor 1\n12 abc x\n".into(),
        format!("postern-spa-replay 2\nboot b\nfloor 1\nx {id} a\n"),
        format!("postern-spa-replay 2\nboot b\nfloor 1\n1 {id}\n"),
        format!("postern-spa-replay 2\nboot b\nfloor 1\n1 {id} a b\n"),
        format!(
            "postern-spa-replay 2\nboot b\nfloor 1\n1 {} a\n",
            "zz".repeat(24)
        ),
        format!("postern-spa-replay 1\nboot b\n1 {id} a\n"),
    ] {
        assert!(parse(&bad, "b").is_err(), "{bad:?}");
    }
}

#[test]
fn an_unknown_history_guards_from_now() {
    let (boot, now) = (Millis(1_000), Millis(500_000));
    assert_eq!(Loaded::Bad("junk".into()).guard(boot, now), now);
    for l in [Loaded::Missing, Loaded::Restored(3), Loaded::OtherBoot] {
        assert_eq!(l.guard(boot, now), boot, "{l:?}");
    }
}

#[test]
fn file_survives_a_reload_keeps_its_floor_and_drops_expired_entries() {
    let d = dir("reload");
    let (mut f, loaded) = ReplayFile::load(&d).unwrap();
    assert_eq!(loaded, Loaded::Missing);
    f.record_packet(Some("a"), e(1, 1000), 1000, 120).unwrap();
    f.record_packet(Some("a"), e(2, 1100), 1100, 120).unwrap();
    f.record_packet(Some("b"), e(2, 1100), 1100, 120).unwrap();
    f.record_packet(None, e(3, 1200), 1200, 120).unwrap(); // e(1) expired: 1000 + 120 < 1200
    let mode = std::fs::metadata(d.join(FILE_NAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (g, loaded) = ReplayFile::load(&d).unwrap();
    if read_boot_id().is_empty() {
        assert!(matches!(loaded, Loaded::Bad(_)));
    } else {
        assert_eq!(loaded, Loaded::Restored(2));
        assert_eq!(g.record().floor, 1001);
        assert_eq!(
            g.record().entries,
            [saved(Some("a"), e(2, 1100)), saved(None, e(3, 1200))]
        );
    }
    assert!(!d.join(TEMP_NAME).exists());
    std::fs::write(d.join(FILE_NAME), "junk").unwrap();
    let (_, loaded) = ReplayFile::load(&d).unwrap();
    assert!(matches!(loaded, Loaded::Bad(_)));
    let _ = std::fs::remove_dir_all(&d);
}

/// The attack: a symlink planted where the temporary goes. Before, the
/// daemon (root) wrote through it into any file; now it is unlinked, the
/// target stays untouched, and the state file is written.
#[test]
fn a_planted_temporary_symlink_is_not_followed() {
    let d = dir("symlink");
    let victim = d.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.join(TEMP_NAME)).unwrap();
    let (mut f, _) = ReplayFile::load(&d).unwrap();
    f.record_packet(Some("a"), e(1, 1000), 1000, 120).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let text = std::fs::read_to_string(d.join(FILE_NAME)).unwrap();
    assert!(text.starts_with("postern-spa-replay 2\n"), "{text}");
    assert!(!d.join(TEMP_NAME).exists());
    // A stale regular temporary (a crash mid-write) is replaced as well.
    std::fs::write(d.join(TEMP_NAME), "half").unwrap();
    f.record_packet(Some("a"), e(2, 1000), 1000, 120).unwrap();
    assert!(!d.join(TEMP_NAME).exists());
    // And the state file itself is not read through a symlink.
    std::fs::remove_file(d.join(FILE_NAME)).unwrap();
    std::os::unix::fs::symlink(&victim, d.join(FILE_NAME)).unwrap();
    let (_, loaded) = ReplayFile::load(&d).unwrap();
    assert!(matches!(loaded, Loaded::Bad(_)), "{loaded:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_state_directory_must_not_be_writable_by_others() {
    let d = dir("modes");
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(check_dir(&d, euid).is_ok());
    for mode in [0o770, 0o702, 0o777, 0o1777] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = check_dir(&d, euid).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others"),
            "{mode:o}: {err}"
        );
        assert!(ReplayFile::load(&d).is_err());
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(check_dir(&d, euid).is_ok(), "readable by others is fine");
    // Owned by someone else (neither root nor the daemon).
    if euid == 0 {
        std::os::unix::fs::chown(&d, Some(4242), None).unwrap();
        let err = check_dir(&d, 1000).unwrap_err().to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
        assert!(check_dir(&d, 4242).is_ok(), "the daemon's own uid is fine");
    }
    assert!(check_dir(&d.join("nope"), euid).is_err());
    let _ = std::fs::remove_dir_all(&d);
}
