//! The .apk (apk-tools v3, ADB format) packages for OpenWrt 25.12 that
//! `scripts/build-package.sh --format apk` writes (with tools/mkapk.py).
//!
//! CI has no apk-tools, so the packages are read back here by a small ADB
//! reader written from the format description (apk-tools' doc/apk-v3.5.scd,
//! the field numbers of src/apk_adb.h), sharing nothing with the writer, and
//! compared with the stage `build-ipk.sh --stage-only` assembles: every file
//! with its mode, size and SHA-256, the DATA blocks, the metadata and the
//! scripts. The real apk-tools was used outside CI (docs/openwrt-apk.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

const EXE: &str = env!("CARGO_BIN_EXE_postern");
const EPOCH: u64 = 1_700_000_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `PKG_VERSION` and `PKG_RELEASE` of the feed Makefile.
fn makefile_version() -> (String, String) {
    let mk = std::fs::read_to_string(repo().join("openwrt/postern/Makefile")).unwrap();
    let get = |key: &str| {
        mk.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the Makefile"))
            .to_string()
    };
    (get("PKG_VERSION:="), get("PKG_RELEASE:="))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("postern-apk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn python_or_skip(test: &str) -> bool {
    if Command::new("python3").arg("--version").output().is_ok() {
        return true;
    }
    assert!(!in_ci(), "{test}: python3 must be installed in CI");
    eprintln!("\n*** SKIPPED {test}: python3 not installed ***\n");
    false
}

fn run(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join(script))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .output()
        .unwrap()
}

/// Builds a package; returns its path.
fn build(format_args: &[&str], out: &Path) -> PathBuf {
    let mut args = vec!["--format", "apk"];
    args.extend_from_slice(format_args);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = run("scripts/build-package.sh", &args);
    assert!(
        o.status.success(),
        "build-package {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

const POSTERN: &[&str] = &["--arch", "x86_64", "--binary", EXE, "--allow-dynamic"];

/// The stage build-ipk.sh assembles: relative path -> (mode, content).
fn stage(args: &[&str], dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut a = args.to_vec();
    a.extend_from_slice(&["--stage-only", dir.to_str().unwrap()]);
    let o = run("scripts/build-ipk.sh", &a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files = BTreeMap::new();
    collect(&dir.join("data"), "", &mut files);
    files
}

fn collect(dir: &Path, rel: &str, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            collect(&e.path(), &path, out);
        } else {
            let mode = meta.permissions().mode() & 0o7777;
            out.insert(path, (mode, std::fs::read(e.path()).unwrap()));
        }
    }
}

// ---------------------------------------------------------------------------
// An ADB reader, from the format description.

/// Value types: the high 4 bits of a 32-bit little-endian value tag.
const TYPE_SPECIAL: u32 = 0x0;
const TYPE_INT: u32 = 0x1;
const TYPE_INT32: u32 = 0x2;
const TYPE_INT64: u32 = 0x3;
const TYPE_BLOB8: u32 = 0x8;
const TYPE_BLOB16: u32 = 0x9;
const TYPE_BLOB32: u32 = 0xa;
const TYPE_ARRAY: u32 = 0xd;
const TYPE_OBJECT: u32 = 0xe;

/// Field numbers (apk_adb.h).
mod field {
    pub const PKG_INFO: usize = 1;
    pub const PKG_PATHS: usize = 2;
    pub const PKG_SCRIPTS: usize = 3;
    pub const PI_NAME: usize = 1;
    pub const PI_VERSION: usize = 2;
    pub const PI_HASHES: usize = 3;
    pub const PI_DESCRIPTION: usize = 4;
    pub const PI_ARCH: usize = 5;
    pub const PI_LICENSE: usize = 6;
    pub const PI_ORIGIN: usize = 7;
    pub const PI_BUILD_TIME: usize = 11;
    pub const PI_INSTALLED_SIZE: usize = 12;
    pub const PI_DEPENDS: usize = 15;
    pub const DEP_NAME: usize = 1;
    pub const DEP_VERSION: usize = 2;
    pub const DEP_MATCH: usize = 3;
    pub const ACL_MODE: usize = 1;
    pub const ACL_USER: usize = 2;
    pub const ACL_GROUP: usize = 3;
    pub const FI_NAME: usize = 1;
    pub const FI_ACL: usize = 2;
    pub const FI_SIZE: usize = 3;
    pub const FI_MTIME: usize = 4;
    pub const FI_HASHES: usize = 5;
    pub const FI_TARGET: usize = 6;
    pub const DI_NAME: usize = 1;
    pub const DI_ACL: usize = 2;
    pub const DI_FILES: usize = 3;
    pub const SCRIPT_NAMES: [&str; 7] = [
        "trigger",
        "pre-install",
        "post-install",
        "pre-deinstall",
        "post-deinstall",
        "pre-upgrade",
        "post-upgrade",
    ];
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("read past the end"))
}

/// Multi-byte values sit at offsets aligned to their width (at most 4), as
/// apk's own writer places them: routers' MIPS cores trap on unaligned loads.
fn aligned(at: usize, to: usize) {
    assert_eq!(at % to, 0, "value at offset {at} not aligned to {to}");
}

/// The ADB block's payload: an 8-byte header (compat version, version,
/// reserved, root value) and the values it refers to by offset.
struct Adb<'a>(&'a [u8]);

impl Adb<'_> {
    fn root(&self) -> u32 {
        assert_eq!(self.0[0], 0, "ADB compat version");
        le32(self.0, 4)
    }

    fn blob(&self, v: u32) -> Option<&[u8]> {
        let (t, at) = (v >> 28, (v & 0x0fff_ffff) as usize);
        let (len, start) = match t {
            TYPE_SPECIAL => {
                assert_eq!(v, 0, "only null may stand for a blob");
                return None;
            }
            TYPE_BLOB8 => (self.0[at] as usize, at + 1),
            TYPE_BLOB16 => {
                aligned(at, 2);
                (
                    u16::from_le_bytes([self.0[at], self.0[at + 1]]) as usize,
                    at + 2,
                )
            }
            TYPE_BLOB32 => {
                aligned(at, 4);
                (le32(self.0, at) as usize, at + 4)
            }
            _ => panic!("value {v:#x} is not a blob"),
        };
        Some(&self.0[start..start + len])
    }

    fn string(&self, v: u32) -> String {
        String::from_utf8(self.blob(v).map(<[u8]>::to_vec).unwrap_or_default()).unwrap()
    }

    fn int(&self, v: u32) -> u64 {
        let at = (v & 0x0fff_ffff) as usize;
        match v >> 28 {
            TYPE_SPECIAL if v == 0 => 0,
            TYPE_INT => u64::from(v & 0x0fff_ffff),
            TYPE_INT32 => {
                aligned(at, 4);
                u64::from(le32(self.0, at))
            }
            TYPE_INT64 => {
                aligned(at, 4);
                u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap())
            }
            _ => panic!("value {v:#x} is not an integer"),
        }
    }

    /// An object's or array's slots after the count (slot 1 first); null is empty.
    fn slots(&self, v: u32) -> Vec<u32> {
        if v == 0 {
            return Vec::new();
        }
        assert!(
            matches!(v >> 28, TYPE_ARRAY | TYPE_OBJECT),
            "{v:#x} is no object"
        );
        let at = (v & 0x0fff_ffff) as usize;
        aligned(at, 4);
        let n = le32(self.0, at) as usize;
        assert!(n >= 1, "the first slot counts the slots, itself included");
        (1..n).map(|i| le32(self.0, at + 4 * i)).collect()
    }

    fn get(&self, obj: u32, field: usize) -> u32 {
        self.slots(obj).get(field - 1).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct FileEntry {
    mode: u64,
    owner: (String, String),
    size: u64,
    mtime: u64,
    sha256: Vec<u8>,
}

#[derive(Debug)]
struct Package {
    name: String,
    version: String,
    arch: String,
    description: String,
    license: String,
    origin: String,
    build_time: u64,
    installed_size: u64,
    depends: Vec<String>,
    /// Versioned dependencies: (name, match bits, version); apk_version.h:
    /// equal 1, less 2, greater 4; no match field means equal.
    versioned: Vec<(String, u64, String)>,
    /// Directory path ("" = root) -> mode and owner, in package order.
    dirs: Vec<(String, u64, (String, String))>,
    /// File path -> entry; and the (path, file) index of each, in package order.
    files: BTreeMap<String, FileEntry>,
    order: Vec<(u32, u32, String)>,
    scripts: BTreeMap<String, String>,
    /// DATA blocks: (path index, file index, content).
    data: Vec<(u32, u32, Vec<u8>)>,
    unique_id_ok: bool,
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Reads an uncompressed v3 package: "ADB." "pckg", one ADB block, DATA blocks.
fn read_apk(file: &[u8]) -> Package {
    assert_eq!(&file[..4], b"ADB.", "uncompressed ADB magic");
    assert_eq!(&file[4..8], b"pckg", "package schema");
    let mut blocks = Vec::new();
    let mut at = 8;
    while at < file.len() {
        let word = le32(file, at);
        let (kind, raw) = (word >> 30, (word & 0x3fff_ffff) as usize);
        assert!(raw >= 4 && at + round8(raw) <= file.len(), "block at {at}");
        assert!(
            file[at + raw..at + round8(raw)].iter().all(|&b| b == 0),
            "padding"
        );
        blocks.push((kind, &file[at + 4..at + raw]));
        at += round8(raw);
    }
    assert_eq!(at, file.len());
    assert_eq!(blocks[0].0, 0, "first block is the ADB block");
    assert!(
        blocks[1..].iter().all(|(k, _)| *k == 2),
        "then only DATA blocks (unsigned: no SIG block)"
    );
    let adb_bytes = blocks[0].1;
    let adb = Adb(adb_bytes);
    let root = adb.root();
    let info = adb.get(root, field::PKG_INFO);
    let s = |f| adb.string(adb.get(info, f));

    // The unique id: SHA-256 of the ADB block with the id zeroed, first 20 bytes.
    let id_val = adb.get(info, field::PI_HASHES);
    let id = adb.blob(id_val).expect("unique id").to_vec();
    let id_at = (id_val & 0x0fff_ffff) as usize + 1;
    let mut zeroed = adb_bytes.to_vec();
    zeroed[id_at..id_at + id.len()].fill(0);
    let unique_id_ok = id.len() == 20 && Sha256::digest(&zeroed)[..20] == id[..];

    let acl = |obj: u32| {
        (
            adb.int(adb.get(obj, field::ACL_MODE)),
            (
                adb.string(adb.get(obj, field::ACL_USER)),
                adb.string(adb.get(obj, field::ACL_GROUP)),
            ),
        )
    };
    let mut dirs = Vec::new();
    let mut files = BTreeMap::new();
    let mut order = Vec::new();
    for (di, dir) in adb
        .slots(adb.get(root, field::PKG_PATHS))
        .iter()
        .enumerate()
    {
        let dname = adb.string(adb.get(*dir, field::DI_NAME));
        let (mode, owner) = acl(adb.get(*dir, field::DI_ACL));
        dirs.push((dname.clone(), mode, owner));
        for (fi, f) in adb.slots(adb.get(*dir, field::DI_FILES)).iter().enumerate() {
            assert_eq!(adb.get(*f, field::FI_TARGET), 0, "no links or devices");
            let fname = adb.string(adb.get(*f, field::FI_NAME));
            let path = if dname.is_empty() {
                fname
            } else {
                format!("{dname}/{fname}")
            };
            let (mode, owner) = acl(adb.get(*f, field::FI_ACL));
            let entry = FileEntry {
                mode,
                owner,
                size: adb.int(adb.get(*f, field::FI_SIZE)),
                mtime: adb.int(adb.get(*f, field::FI_MTIME)),
                sha256: adb.blob(adb.get(*f, field::FI_HASHES)).unwrap().to_vec(),
            };
            order.push((di as u32 + 1, fi as u32 + 1, path.clone()));
            files.insert(path, entry);
        }
    }
    let mut scripts = BTreeMap::new();
    for (i, v) in adb
        .slots(adb.get(root, field::PKG_SCRIPTS))
        .iter()
        .enumerate()
    {
        if *v != 0 {
            scripts.insert(field::SCRIPT_NAMES[i].to_string(), adb.string(*v));
        }
    }
    let data = blocks[1..]
        .iter()
        .map(|(_, b)| (le32(b, 0), le32(b, 4), b[8..].to_vec()))
        .collect();
    Package {
        name: s(field::PI_NAME),
        version: s(field::PI_VERSION),
        arch: s(field::PI_ARCH),
        description: s(field::PI_DESCRIPTION),
        license: s(field::PI_LICENSE),
        origin: s(field::PI_ORIGIN),
        build_time: adb.int(adb.get(info, field::PI_BUILD_TIME)),
        installed_size: adb.int(adb.get(info, field::PI_INSTALLED_SIZE)),
        depends: adb
            .slots(adb.get(info, field::PI_DEPENDS))
            .iter()
            .map(|d| adb.string(adb.get(*d, field::DEP_NAME)))
            .collect(),
        versioned: adb
            .slots(adb.get(info, field::PI_DEPENDS))
            .iter()
            .filter(|d| adb.get(**d, field::DEP_VERSION) != 0)
            .map(|d| {
                let bits = match adb.get(*d, field::DEP_MATCH) {
                    0 => 1,
                    m => adb.int(m),
                };
                (
                    adb.string(adb.get(*d, field::DEP_NAME)),
                    bits,
                    adb.string(adb.get(*d, field::DEP_VERSION)),
                )
            })
            .collect(),
        dirs,
        files,
        order,
        scripts,
        data,
        unique_id_ok,
    }
}

/// The files the package must hold: the stage plus OpenWrt's
/// lib/apk/packages/NAME.{rusers,list,conffiles,conffiles_static} (`rusers`:
/// the control's `Require-User` value, listed in NAME.list like a staged file).
fn expected_files(
    name: &str,
    staged: &BTreeMap<String, (u32, Vec<u8>)>,
    conffiles: &[&str],
    rusers: Option<&str>,
) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut want = staged.clone();
    if let Some(users) = rusers {
        want.insert(
            format!("lib/apk/packages/{name}.rusers"),
            (0o644, format!("{users}\n").into_bytes()),
        );
    }
    let list: String = want.keys().map(|p| format!("/{p}\n")).collect();
    want.insert(
        format!("lib/apk/packages/{name}.list"),
        (0o644, list.into_bytes()),
    );
    if !conffiles.is_empty() {
        let names: String = conffiles.iter().map(|c| format!("{c}\n")).collect();
        let sums: String = conffiles
            .iter()
            .map(|c| {
                let content = &staged[c.trim_start_matches('/')].1;
                format!("{c} {:x}\n", Sha256::digest(content))
            })
            .collect();
        want.insert(
            format!("lib/apk/packages/{name}.conffiles"),
            (0o644, names.into_bytes()),
        );
        want.insert(
            format!("lib/apk/packages/{name}.conffiles_static"),
            (0o644, sums.into_bytes()),
        );
    }
    want
}

/// Everything apk checks or relies on, against the stage.
fn check_against_stage(pkg: &Package, want: &BTreeMap<String, (u32, Vec<u8>)>) {
    assert_eq!(
        pkg.files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "file list"
    );
    let root = ("root".to_string(), "root".to_string());
    for (path, (mode, content)) in want {
        let f = &pkg.files[path];
        assert_eq!(f.mode, u64::from(*mode), "{path}: mode {:o}", f.mode);
        assert_eq!(f.owner, root, "{path}");
        assert_eq!(f.size, content.len() as u64, "{path}: size");
        assert_eq!(f.mtime, EPOCH, "{path}: mtime");
        assert_eq!(f.sha256, Sha256::digest(content).to_vec(), "{path}: sha256");
    }
    // Directories: every parent listed, root first, sorted bytewise (apk
    // binary-searches them), all 0755 root:root.
    let names: Vec<&str> = pkg.dirs.iter().map(|d| d.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "directories sorted");
    assert_eq!(names[0], "", "the root directory first");
    for path in want.keys() {
        let mut p = Path::new(path.as_str());
        while let Some(parent) = p.parent() {
            assert!(
                names.contains(&parent.to_str().unwrap()),
                "{path}: no directory entry for {}",
                parent.display()
            );
            p = parent;
        }
    }
    for (name, mode, owner) in &pkg.dirs {
        assert_eq!((*mode, owner), (0o755, &root), "directory '{name}'");
    }
    // Files sorted within each directory.
    for w in pkg.order.windows(2) {
        if w[0].0 == w[1].0 {
            assert!(w[0].2 < w[1].2, "files sorted: {} {}", w[0].2, w[1].2);
        }
    }
    // One DATA block per non-empty file, in (directory, file) order, whose
    // bytes are the staged file's.
    let nonempty: Vec<&(u32, u32, String)> = pkg
        .order
        .iter()
        .filter(|(_, _, p)| pkg.files[p].size > 0)
        .collect();
    assert_eq!(pkg.data.len(), nonempty.len(), "DATA blocks");
    for ((pi, fi, content), (want_pi, want_fi, path)) in pkg.data.iter().zip(nonempty) {
        assert_eq!((pi, fi), (want_pi, want_fi), "{path}: block order");
        assert_eq!(content, &want[path].1, "{path}: DATA block content");
    }
    let total: u64 = want.values().map(|(_, c)| c.len() as u64).sum();
    assert_eq!(pkg.installed_size, total, "installed-size");
    assert!(pkg.unique_id_ok, "unique id = SHA-256 of the metadata");
    assert_eq!(pkg.build_time, EPOCH);
}

#[test]
fn apk_holds_the_staged_files_metadata_and_scripts() {
    if !python_or_skip("apk_holds_the_staged_files_metadata_and_scripts") {
        return;
    }
    let tmp = TempDir::new("main");
    let apk = build(&[POSTERN, &["--compression", "none"]].concat(), &tmp.0);
    let (version, release) = makefile_version();
    assert_eq!(
        apk.file_name().unwrap().to_str().unwrap(),
        format!("postern-{version}-r{release}_x86_64.apk")
    );
    let pkg = read_apk(&std::fs::read(&apk).unwrap());
    assert_eq!(pkg.name, "postern");
    assert_eq!(pkg.version, format!("{version}-r{release}"));
    assert!(apk_version_is_valid(&pkg.version), "{}", pkg.version);
    assert_eq!(pkg.arch, "x86_64");
    assert_eq!(pkg.depends, ["kmod-nft-core", "kmod-nft-nat", "libc"]);
    assert_eq!(pkg.license, "Apache-2.0 OR MIT");
    assert_eq!(pkg.origin, "openwrt/postern");
    assert!(pkg.description.starts_with("Port knocking"));
    assert!(!pkg.description.contains('\n') && pkg.description.len() <= 256);

    let staged = stage(POSTERN, &tmp.0.join("stage"));
    assert_eq!(staged["usr/sbin/postern"].1, std::fs::read(EXE).unwrap());
    // The daemon's system user, created on install (OpenWrt's USERID).
    let users = std::fs::read_to_string(tmp.0.join("stage/control/control"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Require-User: ").map(str::to_string));
    assert_eq!(users.as_deref(), Some("postern=370:postern=370"));
    let want = expected_files(
        "postern",
        &staged,
        &["/etc/config/postern"],
        users.as_deref(),
    );
    check_against_stage(&pkg, &want);
    assert_eq!(pkg.files["etc/config/postern"].mode, 0o600);
    assert_eq!(pkg.files["usr/sbin/postern"].mode, 0o755);
    assert_eq!(pkg.files["etc/uci-defaults/90-postern"].mode, 0o755);
    let list = String::from_utf8(want["lib/apk/packages/postern.list"].1.clone()).unwrap();
    for p in ["/etc/init.d/postern", "/etc/uci-defaults/90-postern"] {
        assert!(list.lines().any(|l| l == p), "{p} in the list");
    }

    // Scripts: OpenWrt's default_postinst/default_prerm with the package
    // name given (apk passes the version, not the name), the ipk's bodies.
    let names: Vec<&str> = pkg.scripts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "post-deinstall",
            "post-install",
            "post-upgrade",
            "pre-deinstall"
        ]
    );
    for (name, script) in &pkg.scripts {
        assert!(script.starts_with("#!/bin/sh\n"), "{name}");
        assert!(script.contains("export pkgname='postern'\n"), "{name}");
        let out = Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: sh -n");
    }
    let body = |f: &str| {
        let text =
            String::from_utf8(std::fs::read(tmp.0.join("stage/control").join(f)).unwrap()).unwrap();
        text.split_once('\n').unwrap().1.to_string()
    };
    assert!(pkg.scripts["post-install"].ends_with(&body("postinst")));
    assert!(pkg.scripts["post-install"].contains("default_postinst"));
    assert!(pkg.scripts["post-upgrade"].contains("export PKG_UPGRADE=1\n"));
    assert!(pkg.scripts["post-upgrade"].ends_with(&body("postinst")));
    assert!(pkg.scripts["pre-deinstall"].ends_with(&body("prerm")));
    assert!(pkg.scripts["pre-deinstall"].contains("default_prerm"));
    assert!(pkg.scripts["post-deinstall"].ends_with(&body("postrm")));
    assert!(pkg.scripts["post-deinstall"].contains("delete firewall.postern"));
}

#[test]
fn luci_apk_is_noarch_with_its_files_and_modes() {
    if !python_or_skip("luci_apk_is_noarch_with_its_files_and_modes") {
        return;
    }
    let tmp = TempDir::new("luci");
    let apk = build(&["--luci", "--compression", "none"], &tmp.0);
    let pkg = read_apk(&std::fs::read(&apk).unwrap());
    assert_eq!(pkg.name, "luci-app-postern");
    assert_eq!(pkg.arch, "noarch", "ipk 'all' is apk 'noarch'");
    assert_eq!(pkg.depends, ["libc", "luci-base", "postern"]);
    let staged = stage(&["--luci"], &tmp.0.join("stage"));
    check_against_stage(
        &pkg,
        &expected_files("luci-app-postern", &staged, &[], None),
    );
    assert_eq!(pkg.files["usr/libexec/rpcd/luci.postern"].mode, 0o755);
    assert!(pkg.scripts["post-install"].contains("rpcd reload"));
}

/// CRC-32 (IEEE), for wrapping the raw deflate stream as gzip.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn apk_default_is_deflate_of_the_same_package_and_reproducible() {
    if !python_or_skip("apk_default_is_deflate_of_the_same_package_and_reproducible") {
        return;
    }
    let tmp = TempDir::new("deflate");
    let plain = std::fs::read(build(
        &[POSTERN, &["--compression", "none"]].concat(),
        &tmp.0.join("plain"),
    ))
    .unwrap();
    let packed = std::fs::read(build(POSTERN, &tmp.0.join("a"))).unwrap();
    let again = std::fs::read(build(POSTERN, &tmp.0.join("b"))).unwrap();
    assert_eq!(packed, again, "same inputs, same bytes");
    assert_eq!(&packed[..4], b"ADBd", "deflate-compressed ADB");
    assert!(packed.len() < plain.len());

    // "ADBd" + raw deflate of the uncompressed file: gzip checks it once
    // wrapped in a gzip header and the CRC/length of the uncompressed bytes.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend_from_slice(&packed[4..]);
    gz.extend_from_slice(&crc32(&plain).to_le_bytes());
    gz.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    let mut child = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &gz));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "gzip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, plain, "inflated package = uncompressed package");
}

// ---------------------------------------------------------------------------
// apk's version grammar (apk-package(5)):
//   number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}

fn apk_version_is_valid(v: &str) -> bool {
    fn digits(b: &[u8], i: &mut usize) -> bool {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    }
    let b = v.as_bytes();
    let mut i = 0;
    if !digits(b, &mut i) {
        return false;
    }
    while i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(b, &mut i) {
            return false;
        }
    }
    if i < b.len() && b[i].is_ascii_lowercase() {
        i += 1;
    }
    while i < b.len() && b[i] == b'_' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_lowercase() {
            i += 1;
        }
        let suffix = &v[start..i];
        if !["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"].contains(&suffix) {
            return false;
        }
        digits(b, &mut i);
    }
    if i < b.len() && b[i] == b'~' {
        i += 1;
        let start = i;
        while i < b.len() && matches!(b[i], b'0'..=b'9' | b'a'..=b'f') {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if v[i..].starts_with("-r") {
        i += 2;
        if !digits(b, &mut i) {
            return false;
        }
    }
    i == b.len()
}

#[test]
fn version_grammar_accepts_the_package_version_and_refuses_ipk_style() {
    let (version, release) = makefile_version();
    assert!(apk_version_is_valid(&format!("{version}-r{release}")));
    for ok in [
        "1",
        "1.2.3",
        "1.2.3a",
        "1.0_rc1",
        "1.0_p2_git",
        "2.0~1a2b-r10",
    ] {
        assert!(apk_version_is_valid(ok), "{ok}");
    }
    // What opkg accepts but apk does not (why the writer converts X-Y to X-rY).
    let ipk_style = format!("{version}-{release}");
    for bad in [
        ipk_style.as_str(),
        "",
        "v1",
        "1.",
        "1..2",
        "1.0-r",
        "1.0-r1-r2",
        "1.0_foo",
        "1.0AB",
        "1.0~",
        "1.0~xyz",
        "1.0 ",
    ] {
        assert!(!apk_version_is_valid(bad), "{bad:?} must be refused");
    }
}

#[test]
fn writer_refuses_a_version_apk_would_refuse() {
    if !python_or_skip("writer_refuses_a_version_apk_would_refuse") {
        return;
    }
    let tmp = TempDir::new("badver");
    let stage = tmp.0.join("stage");
    std::fs::create_dir_all(stage.join("data/usr/bin")).unwrap();
    std::fs::create_dir_all(stage.join("control")).unwrap();
    std::fs::write(stage.join("data/usr/bin/x"), "x").unwrap();
    for (version, ok) in [("1.0-beta", false), ("1.0_beta1-3", true), ("1.0-r2", true)] {
        std::fs::write(
            stage.join("control/control"),
            format!("Package: x\nVersion: {version}\nArchitecture: all\n"),
        )
        .unwrap();
        let out = Command::new("python3")
            .arg(repo().join("tools/mkapk.py"))
            .args(["--stage", stage.to_str().unwrap()])
            .args(["--out-dir", tmp.0.join("out").to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), ok, "{version}");
        if !ok {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not valid for apk"), "{err}");
        }
    }
}

#[test]
fn build_package_passes_shellcheck_and_refuses_a_missing_format() {
    let script = repo().join("scripts/build-package.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format apk or --format ipk"));
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(!in_ci(), "shellcheck must be installed in CI");
        eprintln!("\n*** SKIPPED shellcheck of build-package.sh: not installed ***\n");
        return;
    }
    let out = Command::new("shellcheck").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn long_scripts_and_empty_files_round_trip() {
    if !python_or_skip("long_scripts_and_empty_files_round_trip") {
        return;
    }
    // A 300-byte script needs a 16-bit blob length, a 70 kB one a 32-bit
    // one (61 lines: the 32-bit blob would land unaligned if the writer did
    // not align it); an empty file has an entry but no DATA block.
    let tmp = TempDir::new("wide");
    let stage = tmp.0.join("stage");
    std::fs::create_dir_all(stage.join("data/etc/x")).unwrap();
    std::fs::create_dir_all(stage.join("control")).unwrap();
    std::fs::write(stage.join("data/etc/x/empty"), "").unwrap();
    std::fs::write(stage.join("data/etc/x/one"), "1").unwrap();
    for f in ["empty", "one"] {
        use std::os::unix::fs::PermissionsExt;
        let p = stage.join("data/etc/x").join(f);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::write(
        stage.join("control/control"),
        "Package: x\nVersion: 2.0-3\nArchitecture: all\nDepends: libc, b (>= 1.2), c (<< 3), d (= 4.1-r2)\n",
    )
    .unwrap();
    let post = format!("#!/bin/sh\n{}\n", "true\n".repeat(61));
    let prerm = format!("#!/bin/sh\n{}\n", ": padding\n".repeat(7000));
    std::fs::write(stage.join("control/postinst"), &post).unwrap();
    std::fs::write(stage.join("control/prerm"), &prerm).unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tools/mkapk.py"))
        .args(["--stage", stage.to_str().unwrap()])
        .args(["--out-dir", tmp.0.join("out").to_str().unwrap()])
        .args(["--compression", "none"])
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apk = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let pkg = read_apk(&std::fs::read(apk).unwrap());
    assert_eq!(pkg.version, "2.0-r3");
    assert_eq!(pkg.depends, ["b", "c", "d", "libc"]);
    let v = |n: &str, bits: u64, ver: &str| (n.to_string(), bits, ver.to_string());
    assert_eq!(
        pkg.versioned,
        [v("b", 1 | 4, "1.2"), v("c", 2, "3"), v("d", 1, "4.1-r2")],
        "b>=1.2 c<3 d=4.1-r2"
    );
    assert!(pkg.scripts["post-install"].ends_with(&post["#!/bin/sh\n".len()..]));
    assert!(pkg.scripts["pre-deinstall"].ends_with(&prerm["#!/bin/sh\n".len()..]));
    let mut staged = BTreeMap::new();
    staged.insert("etc/x/empty".to_string(), (0o644, Vec::new()));
    staged.insert("etc/x/one".to_string(), (0o644, b"1".to_vec()));
    check_against_stage(&pkg, &expected_files("x", &staged, &[], None));
}

#[test]
fn feed_makefile_names_license_files_that_exist() {
    let mk = std::fs::read_to_string(repo().join("openwrt/postern/Makefile")).unwrap();
    let files = mk
        .lines()
        .find_map(|l| l.strip_prefix("PKG_LICENSE_FILES:="))
        .expect("PKG_LICENSE_FILES in the feed Makefile");
    let names: Vec<&str> = files.split_whitespace().collect();
    assert_eq!(
        names,
        ["LICENSE-APACHE", "LICENSE-MIT"],
        "one per license of 'Apache-2.0 OR MIT'"
    );
    for name in names {
        let text = std::fs::read_to_string(repo().join(name)).unwrap();
        let title = if name.ends_with("APACHE") {
            "Apache License"
        } else {
            "MIT License"
        };
        assert!(text.contains(title), "{name}");
    }
}

#[test]
fn require_user_becomes_rusers_and_add_group_and_user() {
    if !python_or_skip("require_user_becomes_rusers_and_add_group_and_user") {
        return;
    }
    // OpenWrt's USERID: the ipk control's Require-User, for apk a
    // lib/apk/packages/NAME.rusers file that add_group_and_user reads.
    let tmp = TempDir::new("rusers");
    let stage = tmp.0.join("stage");
    std::fs::create_dir_all(stage.join("data/usr/bin")).unwrap();
    std::fs::create_dir_all(stage.join("control")).unwrap();
    std::fs::write(stage.join("data/usr/bin/x"), "x").unwrap();
    std::fs::write(
        stage.join("control/control"),
        "Package: x\nVersion: 1.0-1\nArchitecture: all\nRequire-User: x=5000:x=5000\n",
    )
    .unwrap();
    std::fs::write(stage.join("control/postinst"), "#!/bin/sh\necho body\n").unwrap();
    let out = Command::new("python3")
        .arg(repo().join("tools/mkapk.py"))
        .args(["--stage", stage.to_str().unwrap()])
        .args(["--out-dir", tmp.0.join("out").to_str().unwrap()])
        .args(["--compression", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apk = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let pkg = read_apk(&std::fs::read(apk).unwrap());
    assert!(pkg.files.contains_key("lib/apk/packages/x.rusers"));
    let rusers = std::fs::read_to_string(stage.join("data/lib/apk/packages/x.rusers")).unwrap();
    assert_eq!(rusers, "x=5000:x=5000\n");
    let post = &pkg.scripts["post-install"];
    let call = post.find("add_group_and_user").expect("add_group_and_user");
    assert!(
        call < post.find("echo body").unwrap(),
        "user before the body"
    );
}

#[test]
fn format_ipk_is_build_ipk() {
    let tmp = TempDir::new("ipk");
    let via = |script: &str, dir: &str| {
        let mut args = vec![];
        if script.ends_with("build-package.sh") {
            args.extend_from_slice(&["--format", "ipk"]);
        }
        args.extend_from_slice(POSTERN);
        let out = tmp.0.join(dir);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let o = run(script, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(String::from_utf8_lossy(&o.stdout).trim()).unwrap()
    };
    assert_eq!(
        via("scripts/build-package.sh", "a"),
        via("scripts/build-ipk.sh", "b")
    );
}
