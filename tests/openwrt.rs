//! The OpenWrt package: files shipped under openwrt/, the .ipk the SDK-free
//! script builds, and the shell scripts' syntax.

use std::path::{Path, PathBuf};
use std::process::Command;

use postern::firewall::nft::ruleset;

const EXE: &str = env!("CARGO_BIN_EXE_postern");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files() -> PathBuf {
    repo().join("openwrt/postern/files")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn fw4_include_files_match_the_daemon_set_names() {
    assert_eq!(
        read(&files().join("fw4-table-pre.nft")),
        ruleset::fw4_table_pre()
    );
    assert_eq!(
        read(&files().join("fw4-chain-pre-input_wan.nft")),
        ruleset::fw4_chain_pre_input_wan()
    );
}

#[test]
fn default_config_is_valid_disabled_and_closes_nothing() {
    let cfg = postern::config::parse_str("postern.config", &read(&files().join("postern.config")))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!cfg.main.enabled, "disabled until the owner sets it up");
    assert!(
        cfg.guarded_ports().is_empty(),
        "nothing is closed by default"
    );
    assert_eq!(cfg.main.interfaces, vec!["wan".to_string()]);
}

#[test]
fn makefile_has_the_feed_package_fields() {
    let mk = read(&repo().join("openwrt/postern/Makefile"));
    let version = format!("PKG_VERSION:={}", env!("CARGO_PKG_VERSION"));
    for needle in [
        version.as_str(),
        "PKG_RELEASE:=",
        "PKG_LICENSE:=",
        "rust-package.mk",
        "$(eval $(call RustBinPackage,postern))",
        "$(eval $(call BuildPackage,postern))",
        "define Package/postern/conffiles\n/etc/config/postern\nendef",
        "+PACKAGE_firewall:ipset",
    ] {
        assert!(mk.contains(needle), "Makefile lacks {needle:?}");
    }
    // Every file the Makefile installs exists.
    for line in mk.lines().filter(|l| l.contains("./files/")) {
        let name = line
            .split("./files/")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert!(
            files().join(name).is_file(),
            "Makefile installs missing {name}"
        );
    }
}

fn tool_or_skip(tool: &str, test: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(!in_ci(), "{test}: '{tool}' must be installed in CI");
    eprintln!("\n*** SKIPPED {test}: '{tool}' not installed ***\n");
    false
}

#[test]
fn shell_scripts_pass_sh_n_and_shellcheck() {
    let scripts = [
        files().join("postern.init"),
        files().join("postern.uci-defaults"),
        files().join("fw3.include"),
        repo().join("scripts/build-ipk.sh"),
    ];
    for s in &scripts {
        let out = Command::new("sh").arg("-n").arg(s).output().unwrap();
        assert!(
            out.status.success(),
            "sh -n {}: {}",
            s.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !tool_or_skip("shellcheck", "shell_scripts_pass_sh_n_and_shellcheck") {
        return;
    }
    let out = Command::new("shellcheck").args(&scripts).output().unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

struct Unpacked {
    dir: PathBuf,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tar(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("tar")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_ipk(extra: &[&str], tag: &str) -> (Unpacked, PathBuf) {
    let dir = std::env::temp_dir().join(format!("postern-ipk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-ipk.sh"))
        .args(extra)
        .args(["--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-ipk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ipk = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (Unpacked { dir }, ipk)
}

/// Parses `Key: value` control fields (continuation lines skipped).
fn control_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn ipk_has_openwrt_structure_fields_and_modes() {
    let (tmp, ipk) = build_ipk(
        &["--arch", "x86_64", "--binary", EXE, "--allow-dynamic"],
        "main",
    );
    let name = ipk.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        name,
        format!("postern_{}-1_x86_64.ipk", env!("CARGO_PKG_VERSION"))
    );
    let d = &tmp.dir;
    // Outer: a gzip'd tar with exactly these three members, in opkg's order.
    let outer = tar(&["-tzf", &name], d);
    assert_eq!(
        outer.lines().collect::<Vec<_>>(),
        ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    );
    tar(&["-xzf", &name], d);
    assert_eq!(read(&d.join("debian-binary")), "2.0\n");

    let control = tar(&["-xzOf", "control.tar.gz", "./control"], d);
    let f = control_fields(&control);
    assert_eq!(field(&f, "Package"), "postern");
    assert_eq!(
        field(&f, "Version"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field(&f, "Architecture"), "x86_64");
    assert!(field(&f, "Depends").contains("kmod-nft-core"));
    assert!(!field(&f, "Description").is_empty());
    assert_eq!(
        tar(&["-xzOf", "control.tar.gz", "./conffiles"], d),
        "/etc/config/postern\n"
    );

    let listing = tar(&["-tzvf", "control.tar.gz"], d);
    for script in ["./postinst", "./prerm"] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(script))
            .unwrap_or_else(|| panic!("no {script}"));
        assert!(line.starts_with("-rwxr-xr-x 0/0"), "{line}");
    }

    let data = tar(&["-tzvf", "data.tar.gz"], d);
    let expect = [
        ("-rwxr-xr-x", "./usr/sbin/postern"),
        ("-rwxr-xr-x", "./etc/init.d/postern"),
        ("-rw-------", "./etc/config/postern"),
        ("-rwxr-xr-x", "./etc/uci-defaults/90-postern"),
        ("-rw-r--r--", "./etc/capabilities/postern.json"),
        (
            "-rw-r--r--",
            "./usr/share/nftables.d/table-pre/20-postern.nft",
        ),
        (
            "-rw-r--r--",
            "./usr/share/nftables.d/chain-pre/input_wan/20-postern.nft",
        ),
        ("-rwxr-xr-x", "./usr/share/postern/fw3.include"),
    ];
    for (mode, path) in expect {
        let line = data
            .lines()
            .find(|l| l.ends_with(path))
            .unwrap_or_else(|| panic!("no {path} in\n{data}"));
        assert!(line.starts_with(&format!("{mode} 0/0")), "{line}");
    }
    // Installed-Size is the unpacked data size; the binary is this build's, of the package's arch.
    let data_dir = d.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    tar(&["-xzf", "../data.tar.gz"], &data_dir);
    let du = Command::new("du")
        .args(["-sb", "."])
        .current_dir(&data_dir)
        .output()
        .unwrap();
    let size = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(field(&f, "Installed-Size"), size);
    let bin = std::fs::read(data_dir.join("usr/sbin/postern")).unwrap();
    assert_eq!(bin, std::fs::read(EXE).unwrap());
    assert_eq!(&bin[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([bin[18], bin[19]]),
        62,
        "EM_X86_64 for x86_64"
    );
}

#[test]
fn ipk_refuses_a_binary_of_another_arch_or_glibc() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-ipk.sh"))
        .args([
            "--arch",
            "mipsel_24kc",
            "--binary",
            EXE,
            "--out",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mipsel_24kc needs"));
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-ipk.sh"))
        .args(["--arch", "x86_64", "--binary", EXE, "--out", "/nonexistent"])
        .output()
        .unwrap();
    if cfg!(target_env = "gnu") {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("static musl"));
    }
}
