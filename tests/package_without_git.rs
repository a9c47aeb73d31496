//! The package builders on a machine without git (a bare Debian, or a
//! source tarball): every file is still stamped with a sane date — the newest
//! source file's — not 1970-01-01. With git, the last commit's time; an
//! explicit SOURCE_DATE_EPOCH wins over both.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("postern-nogit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A PATH whose `git` is not there: a `git` that fails as a missing command
/// does (exit 127), ahead of the real PATH.
fn path_without_git(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let git = bin.join("git");
    std::fs::write(
        &git,
        "#!/bin/sh\necho 'git: command not found' >&2\nexit 127\n",
    )
    .unwrap();
    std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// The newest modification time among the sources the packages come from.
fn newest_source_mtime() -> i64 {
    fn walk(p: &Path, newest: &mut i64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), newest);
            }
        } else if m.is_file() {
            *newest = (*newest).max(m.mtime());
        }
    }
    let mut newest = 0;
    for p in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "openwrt",
        "scripts",
        "tools",
    ] {
        walk(&repo().join(p), &mut newest);
    }
    newest
}

/// Stages the postern package with `script` (build-ipk.sh or
/// build-package.sh --format ipk) under `env`; returns the control file's mtime.
fn staged_mtime(script: &str, dir: &Path, env: &[(&str, &str)]) -> i64 {
    let stage = dir.join(format!("stage-{}", script.replace('/', "-")));
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts").join(script));
    if script == "build-package.sh" {
        cmd.args(["--format", "ipk"]);
    }
    let out = cmd
        .args(["--arch", "x86_64", "--allow-dynamic", "--binary"])
        .arg(env!("CARGO_BIN_EXE_postern"))
        .arg("--stage-only")
        .arg(&stage)
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::metadata(stage.join("control/control"))
        .unwrap()
        .mtime();
    let bin = std::fs::metadata(stage.join("data/usr/sbin/postern"))
        .unwrap()
        .mtime();
    assert_eq!(t, bin, "{script}: one date for every file");
    let _ = std::fs::remove_dir_all(&stage);
    t
}

#[test]
fn without_git_packages_carry_the_newest_source_date_not_1970() {
    let dir = scratch("date");
    let path = path_without_git(&dir.0);
    let expected = newest_source_mtime();
    // 2024-01-01: any real source tree is newer.
    assert!(expected > 1_704_067_200, "{expected}");
    for script in ["build-ipk.sh", "build-package.sh"] {
        assert_eq!(
            staged_mtime(script, &dir.0, &[("PATH", &path)]),
            expected,
            "{script} without git"
        );
    }
}

#[test]
fn source_date_epoch_wins_and_git_gives_the_last_commit() {
    let dir = scratch("epoch");
    for script in ["build-ipk.sh", "build-package.sh"] {
        assert_eq!(
            staged_mtime(script, &dir.0, &[("SOURCE_DATE_EPOCH", "1700000000")]),
            1_700_000_000,
            "{script}"
        );
    }
    let commit = Command::new("git")
        .args(["-C"])
        .arg(repo())
        .args(["log", "-1", "--format=%ct"])
        .output();
    let Some(commit) = commit.ok().filter(|o| o.status.success()) else {
        eprintln!("(no git or no checkout: the commit date is not checked)");
        return;
    };
    let commit: i64 = String::from_utf8_lossy(&commit.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(staged_mtime("build-ipk.sh", &dir.0, &[]), commit);
}
