//! The SDK feed Makefile (`openwrt/postern/Makefile`) evaluated by GNU make
//! against two generations of the packages feed's Rust support
//! (`lang/rust/rust-package.mk`): the `cargo install` command line it
//! produces must build `[profile.openwrt]` with `--locked` exactly once.
//!
//! The two feeds here are models written for this test, holding only the
//! lines that decide the command line: before 2025-08-20 (no
//! `RUST_PKG_LOCKED`, no `--locked`; OpenWrt 23.05 and 24.10 SDKs released
//! before then) and after (`RUST_PKG_LOCKED ?= 1` adds `--locked`). Set
//! `POSTERN_OPENWRT_PACKAGES` to a checkout of openwrt/packages to run the
//! same checks against its real `lang/rust/*.mk` as well (outside CI).
//! What this cannot show: that the SDK's cargo and rustc then build it
//! (the README says what was verified with a real SDK, and what was not).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The parts of rust-values.mk that decide the profile and the flags.
const VALUES: &str = r#"
CARGO_RUSTFLAGS+=-Ctarget-feature=-crt-static
CARGO_PKG_CONFIG_VARS= \
	CARGO_PROFILE_RELEASE_PANIC=unwind \
	CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	RUSTFLAGS="$(CARGO_RUSTFLAGS)"
CARGO_PKG_PROFILE:=$(if $(CONFIG_DEBUG),dev,release)
"#;

/// rust-package.mk before 2025-08-20: `cargo install` without `--locked`.
const PACKAGE_OLD: &str = r#"
include $(dir $(lastword $(MAKEFILE_LIST)))/rust-values.mk
CARGO_PKG_VARS= $(CARGO_PKG_CONFIG_VARS) MAKEFLAGS="$(PKG_JOBS)"
define Build/Compile/Cargo
	+$(CARGO_PKG_VARS) cargo install -v --profile $(CARGO_PKG_PROFILE) --root $(PKG_INSTALL_DIR) --path "$(PKG_BUILD_DIR)/$(if $(strip $(1)),$(strip $(1)))" $(2)
endef
define RustBinPackage
endef
Build/Compile=$(call Build/Compile/Cargo)
"#;

/// rust-package.mk since 2025-08-20: `RUST_PKG_LOCKED ?= 1` → `--locked`.
const PACKAGE_NEW: &str = r#"
include $(dir $(lastword $(MAKEFILE_LIST)))/rust-values.mk
RUST_PKG_LOCKED ?= 1
CARGO_PKG_VARS= $(CARGO_PKG_CONFIG_VARS) MAKEFLAGS="$(PKG_JOBS)"
CARGO_PKG_ARGS=
ifeq ($(strip $(RUST_PKG_LOCKED)),1)
  CARGO_PKG_ARGS+= --locked
endif
define Build/Compile/Cargo
	+$(CARGO_PKG_VARS) cargo install -v --profile $(CARGO_PKG_PROFILE) --root $(PKG_INSTALL_DIR) --path "$(PKG_BUILD_DIR)/$(if $(strip $(1)),$(strip $(1)),$(strip $(MAKE_PATH)))" $(CARGO_PKG_ARGS) $(2)
endef
define RustBinPackage
endef
Build/Compile=$(call Build/Compile/Cargo)
"#;

/// The buildroot around the feed: rules.mk and package.mk reduced to what
/// the Makefile's evaluation needs, and a target printing the results.
const PACKAGE_MK: &str = "define BuildPackage\nendef\n";
const SHOW_MK: &str = r#"
$(eval $(Package/postern))
show:
	@echo 'COMPILE=$(subst ',,$(strip $(Build/Compile)))'
	@echo 'DEPENDS=$(strip $(DEPENDS))'
"#;

struct Buildroot {
    dir: PathBuf,
}

impl Drop for Buildroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TOPDIR whose packages feed has `package_mk` and `values_mk` (the
/// model's or the real files).
fn buildroot(tag: &str, package_mk: &str, values_mk: &str) -> Buildroot {
    let dir = std::env::temp_dir().join(format!("postern-feed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rust = dir.join("feeds/packages/lang/rust");
    std::fs::create_dir_all(&rust).unwrap();
    std::fs::create_dir_all(dir.join("include")).unwrap();
    std::fs::write(dir.join("rules.mk"), "").unwrap();
    std::fs::write(dir.join("include/package.mk"), PACKAGE_MK).unwrap();
    std::fs::write(dir.join("show.mk"), SHOW_MK).unwrap();
    std::fs::write(rust.join("rust-package.mk"), package_mk).unwrap();
    std::fs::write(rust.join("rust-values.mk"), values_mk).unwrap();
    Buildroot { dir }
}

/// `make show` on the feed Makefile with `vars`: (cargo command, DEPENDS).
fn evaluate(root: &Buildroot, vars: &[&str]) -> (String, String) {
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo().join("openwrt/postern"))
        .arg("-f")
        .arg("Makefile")
        .arg("-f")
        .arg(root.dir.join("show.mk"))
        .arg(format!("TOPDIR={}", root.dir.display()))
        .arg(format!(
            "INCLUDE_DIR={}",
            root.dir.join("include").display()
        ))
        .args(vars)
        .arg("show")
        .output()
        .expect("GNU make");
    assert!(
        out.status.success(),
        "make: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .to_string()
    };
    (get("COMPILE="), get("DEPENDS="))
}

fn count(hay: &str, needle: &str) -> usize {
    hay.split_whitespace().filter(|w| *w == needle).count()
}

/// The checks every feed generation must pass.
fn check_feed(label: &str, package_mk: &str, values_mk: &str) {
    let root = buildroot(label, package_mk, values_mk);
    let (cmd, depends) = evaluate(&root, &["ARCH=mipsel"]);
    assert!(cmd.contains("cargo install"), "{label}: {cmd}");
    assert!(cmd.contains("--profile openwrt"), "{label}: {cmd}");
    assert_eq!(count(&cmd, "--locked"), 1, "{label}: {cmd}");
    // The router build: no client, demo or import (feature `desktop`).
    assert_eq!(count(&cmd, "--no-default-features"), 1, "{label}: {cmd}");
    assert!(
        cmd.contains("RUST_LIBC_UNSTABLE_MUSL_V1_2_3=1"),
        "{label}: {cmd}"
    );
    assert!(cmd.contains("-Cforce-unwind-tables=no"), "{label}: {cmd}");
    assert!(
        cmd.contains("-Ctarget-feature=-crt-static"),
        "{label}: {cmd}"
    );
    for dep in ["+kmod-nft-core", "+kmod-nft-nat"] {
        assert!(
            depends.split_whitespace().any(|d| d == dep),
            "{label}: {depends}"
        );
    }
    // A debug build keeps the dev profile; a CPU cross.sh does not measure
    // keeps its unwind tables.
    let (cmd, _) = evaluate(&root, &["ARCH=riscv64", "CONFIG_DEBUG=y"]);
    assert!(cmd.contains("--profile dev"), "{label}: {cmd}");
    assert!(!cmd.contains("force-unwind-tables"), "{label}: {cmd}");
    // The owner's choice on a new feed stays theirs.
    if package_mk.contains("RUST_PKG_LOCKED") {
        let (cmd, _) = evaluate(&root, &["ARCH=mipsel", "RUST_PKG_LOCKED=0"]);
        assert_eq!(count(&cmd, "--locked"), 0, "{label}: {cmd}");
        assert_eq!(count(&cmd, "--no-default-features"), 1, "{label}: {cmd}");
    }
}

fn make_or_skip(test: &str) -> bool {
    if Command::new("make").arg("--version").output().is_ok() {
        return true;
    }
    assert!(!in_ci(), "{test}: GNU make must be installed in CI");
    eprintln!("\n*** SKIPPED {test}: GNU make not installed ***\n");
    false
}

#[test]
fn feed_makefile_builds_profile_openwrt_locked_on_old_and_new_feeds() {
    if !make_or_skip("feed_makefile_builds_profile_openwrt_locked_on_old_and_new_feeds") {
        return;
    }
    check_feed("old", PACKAGE_OLD, VALUES);
    check_feed("new", PACKAGE_NEW, VALUES);
}

#[test]
fn feed_makefile_with_the_real_packages_feed_when_given() {
    let Ok(feed) = std::env::var("POSTERN_OPENWRT_PACKAGES") else {
        eprintln!("(POSTERN_OPENWRT_PACKAGES not set: the real feed's rust-package.mk is not checked here)");
        return;
    };
    let rust = Path::new(&feed).join("lang/rust");
    let read = |f: &str| std::fs::read_to_string(rust.join(f)).unwrap();
    check_feed("real", &read("rust-package.mk"), &read("rust-values.mk"));
}

#[test]
fn profile_openwrt_keeps_panic_abort_under_the_sdk_environment() {
    // A crate with Cargo.toml's [profile.openwrt] (and [profile.release]),
    // built by cargo with the SDK's CARGO_PROFILE_RELEASE_* environment: an
    // `inherits = "release"` profile takes those overrides unless it spells
    // each setting out.
    let toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let profile = |name: &str| {
        let start = toml
            .find(&format!("\n[profile.{name}]"))
            .unwrap_or_else(|| panic!("Cargo.toml has no [profile.{name}]"));
        let rest = &toml[start + 1..];
        let end = rest[1..].find("\n[").map_or(rest.len(), |e| e + 2);
        rest[..end].to_string()
    };
    let dir = std::env::temp_dir().join(format!("postern-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"p\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n{}\n{}",
            profile("release"),
            profile("openwrt")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["build", "-v", "--profile", "openwrt", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_PROFILE_RELEASE_PANIC", "unwind")
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "2")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let rustc = log
        .lines()
        .find(|l| l.contains("Running") && l.contains("--crate-name p "))
        .unwrap_or_else(|| panic!("{log}"));
    for want in [
        "-C panic=abort",
        "-C opt-level=z",
        "-C codegen-units=1",
        "-C lto",
    ] {
        assert!(rustc.contains(want), "{want}: {rustc}");
    }
    for unwanted in ["overflow-checks=on", "debug-assertions=on"] {
        assert!(!rustc.contains(unwanted), "{unwanted}: {rustc}");
    }
}

#[test]
fn feed_makefile_license_files_exist() {
    let mk = std::fs::read_to_string(repo().join("openwrt/postern/Makefile")).unwrap();
    let files = mk
        .lines()
        .find_map(|l| l.strip_prefix("PKG_LICENSE_FILES:="))
        .expect("PKG_LICENSE_FILES");
    for f in files.split_whitespace() {
        assert!(repo().join(f).is_file(), "PKG_LICENSE_FILES names {f}");
    }
    // Its DEPENDS and the .ipk's: see
    // hand_built_depends_equal_the_sdk_packages_on_fw3_and_fw4_images.
}

/// What OpenWrt's `filter_deps` makes of a DEPENDS list for an image whose
/// selected packages are `selected`: `@...` dropped, `+` stripped, and
/// `COND:pkg` kept only when `CONFIG_COND` is set (`!COND:pkg` when it is not).
fn sdk_depends(depends: &str, selected: &[&str]) -> Vec<String> {
    let mut out = vec!["libc".to_string()];
    for dep in depends.split_whitespace().filter(|d| !d.starts_with('@')) {
        let dep = dep.replace('+', "");
        match dep.split_once(':') {
            None => out.push(dep),
            Some((cond, pkg)) => {
                let (negated, cond) = match cond.strip_prefix('!') {
                    Some(c) => (true, c),
                    None => (false, cond),
                };
                let set = cond
                    .trim_matches(|c| c == '(' || c == ')')
                    .split("||")
                    .any(|c| selected.contains(&c));
                if set != negated {
                    out.push(pkg.to_string());
                }
            }
        }
    }
    out
}

/// `Depends:` of the control file build-ipk.sh writes with `args`.
fn hand_built_depends(args: &[&str]) -> Vec<String> {
    let stage = std::env::temp_dir().join(format!(
        "postern-depends-{}-{}",
        args.join("-"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&stage);
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-ipk.sh"))
        .args(["--arch", "x86_64", "--allow-dynamic", "--binary"])
        .arg(env!("CARGO_BIN_EXE_postern"))
        .args(args)
        .arg("--stage-only")
        .arg(&stage)
        .output()
        .unwrap();
    let control = std::fs::read_to_string(stage.join("control/control"));
    let _ = std::fs::remove_dir_all(&stage);
    assert!(
        out.status.success(),
        "build-ipk {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    control
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .expect("Depends:")
        .split(", ")
        .map(str::to_string)
        .collect()
}

/// The hand-built package depends on what the SDK's package built from the
/// feed Makefile depends on: on a fw4 image (no `firewall` package) and,
/// with `--firewall fw3`, on a fw3 image (ipset and its kernel module).
#[test]
fn hand_built_depends_equal_the_sdk_packages_on_fw3_and_fw4_images() {
    if !make_or_skip("hand_built_depends_equal_the_sdk_packages_on_fw3_and_fw4_images") {
        return;
    }
    let root = buildroot("depends", PACKAGE_NEW, VALUES);
    let (_, depends) = evaluate(&root, &["ARCH=mipsel"]);
    let fw4 = sdk_depends(&depends, &["PACKAGE_firewall4"]);
    let fw3 = sdk_depends(&depends, &["PACKAGE_firewall"]);
    assert!(fw3.iter().any(|d| d == "ipset"), "{depends}");
    assert!(!fw4.iter().any(|d| d == "ipset"), "{depends}");
    assert_eq!(hand_built_depends(&[]), fw4);
    assert_eq!(hand_built_depends(&["--firewall", "fw4"]), fw4);
    assert_eq!(hand_built_depends(&["--firewall", "fw3"]), fw3);
}
