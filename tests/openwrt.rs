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
        read(&files().join("fw4-chain-pre-input.nft")),
        ruleset::fw4_chain_pre_input()
    );
    assert_eq!(
        read(&files().join("fw4-chain-pre-forward.nft")),
        ruleset::fw4_chain_pre_forward()
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
        // The daemon's system user, as OpenWrt packages declare it.
        "USERID:=postern=370:postern=370",
    ] {
        assert!(mk.contains(needle), "Makefile lacks {needle:?}");
    }
    assert!(!mk.contains("capabilities"), "no procd capabilities file");
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
        files().join("firewall-includes.sh"),
        files().join("postern.keepalived-hotplug"),
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
    assert_eq!(field(&f, "Depends"), "libc, kmod-nft-core, kmod-nft-nat");
    assert!(!field(&f, "Description").is_empty());
    assert_eq!(
        tar(&["-xzOf", "control.tar.gz", "./conffiles"], d),
        "/etc/config/postern\n"
    );

    let listing = tar(&["-tzvf", "control.tar.gz"], d);
    for script in ["./postinst", "./prerm", "./postrm"] {
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
        (
            "-rw-r--r--",
            "./usr/share/nftables.d/table-pre/20-postern.nft",
        ),
        (
            "-rw-r--r--",
            "./usr/share/nftables.d/chain-pre/input/20-postern.nft",
        ),
        (
            "-rw-r--r--",
            "./usr/share/nftables.d/chain-pre/forward/20-postern.nft",
        ),
        ("-rwxr-xr-x", "./usr/share/postern/fw3.include"),
        ("-rwxr-xr-x", "./usr/share/postern/firewall-includes.sh"),
        ("-rwxr-xr-x", "./etc/hotplug.d/keepalived/600-postern"),
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

fn luci_view() -> String {
    read(
        &repo()
            .join("openwrt/luci-app-postern/htdocs/luci-static/resources/view/postern/postern.js"),
    )
}

/// Section type → option names the LuCI view edits (`_`-names are UI-only).
fn view_schema(js: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    // The quoted name that follows `form.Class, ` in a call's first line.
    let name_after = |line: &str, call: &str| -> Option<String> {
        let rest = &line[line.find(call)? + call.len()..];
        let rest = &rest[rest.find(", '")? + 3..];
        Some(rest[..rest.find('\'')?].to_string())
    };
    for line in js.lines() {
        // NamedSection(form.NamedSection, 'name', 'type'): the type is the second string.
        let named = line.contains("m.section(form.NamedSection, '");
        let section = if named {
            name_after(line, "m.section(form.NamedSection, '")
        } else {
            name_after(line, "m.section(form.")
        };
        if let Some(t) = section {
            out.entry(t.clone())
                .or_insert_with(std::collections::BTreeSet::new);
            current = Some(t);
        } else if let Some(o) = name_after(line, "s.option(") {
            if !o.starts_with('_') {
                let t = current.clone().expect("option before any section");
                out.get_mut(&t).unwrap().insert(o);
            }
        }
    }
    out
}

/// `postern schema --json`: {"type":["option",...],...} (a flat shape, parsed by hand).
fn daemon_schema() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let out = Command::new(EXE)
        .args(["schema", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let body = text
        .trim()
        .strip_prefix('{')
        .unwrap()
        .strip_suffix('}')
        .unwrap();
    let mut map = std::collections::BTreeMap::new();
    for part in body.split("],") {
        let (kind, options) = part.split_once(":[").expect("type:[...]");
        let options = options.trim_end_matches(']');
        map.insert(
            kind.trim_matches('"').to_string(),
            options
                .split(',')
                .filter(|o| !o.is_empty())
                .map(|o| o.trim_matches('"').to_string())
                .collect(),
        );
    }
    map
}

#[test]
fn luci_view_and_daemon_schema_agree() {
    let view = view_schema(&luci_view());
    let daemon = daemon_schema();
    assert!(daemon.contains_key("sequence") && daemon["postern"].contains("backend"));
    assert_eq!(
        view.keys().collect::<Vec<_>>(),
        daemon.keys().collect::<Vec<_>>(),
        "section types differ between the LuCI view and `postern schema`"
    );
    for (kind, options) in &daemon {
        let missing: Vec<_> = options.difference(&view[kind]).collect();
        let unknown: Vec<_> = view[kind].difference(options).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "config {kind}: not in LuCI: {missing:?}; unknown to the daemon: {unknown:?}"
        );
    }
}

#[test]
fn luci_files_are_valid_js_and_json() {
    let luci = repo().join("openwrt/luci-app-postern");
    for json in [
        "root/usr/share/luci/menu.d/luci-app-postern.json",
        "root/usr/share/rpcd/acl.d/luci-app-postern.json",
    ] {
        let out = Command::new("python3")
            .args(["-m", "json.tool"])
            .arg(luci.join(json))
            .output();
        match out {
            Ok(o) => assert!(
                o.status.success(),
                "{json}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(_) => assert!(!in_ci(), "python3 is needed in CI to check JSON"),
        }
    }
    let acl = read(&luci.join("root/usr/share/rpcd/acl.d/luci-app-postern.json"));
    // Least privilege: readers see status and check; only writers revoke and unban.
    let read_part = &acl[acl.find("\"read\"").unwrap()..acl.find("\"write\"").unwrap()];
    let write_part = &acl[acl.find("\"write\"").unwrap()..];
    assert!(
        read_part.contains("\"luci.postern\": [ \"status\", \"check\" ]"),
        "{acl}"
    );
    assert!(
        !read_part.contains("revoke") && !read_part.contains("unban"),
        "{acl}"
    );
    assert!(
        write_part.contains("\"luci.postern\": [ \"revoke\", \"unban\" ]"),
        "{acl}"
    );
    // The rpcd plugin is a ucode one (as current LuCI apps): its methods are the ACL's.
    let plugin = read(&luci.join("root/usr/share/rpcd/ucode/luci.postern"));
    for method in ["status:", "check:", "revoke:", "unban:"] {
        assert!(plugin.contains(method), "plugin lacks {method}");
    }
    assert!(plugin.contains("return { 'luci.postern': methods };"));
    assert!(!luci.join("root/usr/libexec/rpcd/luci.postern").exists());
    if !tool_or_skip("node", "luci_files_are_valid_js_and_json") {
        return;
    }
    // LuCI loads a view as a function body (it may `return` at top level).
    let wrapped = std::env::temp_dir().join(format!("postern-view-{}.js", std::process::id()));
    std::fs::write(&wrapped, format!("(function() {{\n{}\n}});\n", luci_view())).unwrap();
    let out = Command::new("node")
        .arg("--check")
        .arg(&wrapped)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&wrapped);
    assert!(
        out.status.success(),
        "node --check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn luci_ipk_has_view_menu_acl_and_rpcd_plugin() {
    let (tmp, ipk) = build_ipk(&["--luci"], "luci");
    let name = ipk.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        name,
        format!("luci-app-postern_{}-1_all.ipk", env!("CARGO_PKG_VERSION"))
    );
    tar(&["-xzf", &name], &tmp.dir);
    let control = tar(&["-xzOf", "control.tar.gz", "./control"], &tmp.dir);
    assert!(
        control.contains("Architecture: all")
            && control.contains("Depends: libc, luci-base, rpcd-mod-ucode, postern")
    );
    let data = tar(&["-tzvf", "data.tar.gz"], &tmp.dir);
    for path in [
        "./www/luci-static/resources/view/postern/postern.js",
        "./usr/share/luci/menu.d/luci-app-postern.json",
        "./usr/share/rpcd/acl.d/luci-app-postern.json",
    ] {
        assert!(data.contains(path), "{path} in\n{data}");
    }
    for path in [
        "./www/luci-static/resources/postern/rules.js",
        "./www/luci-static/resources/postern/qr.js",
        "./www/luci-static/resources/postern/client.js",
        "./www/luci-static/resources/postern/stage.js",
    ] {
        assert!(data.contains(path), "{path} in\n{data}");
    }
    // rpcd loads ucode plugins from /usr/share/rpcd/ucode (read, not executed).
    let plugin = data
        .lines()
        .find(|l| l.ends_with("./usr/share/rpcd/ucode/luci.postern"))
        .expect("rpcd ucode plugin");
    assert!(plugin.starts_with("-rw-r--r--"), "{plugin}");
}

#[test]
fn init_script_sets_no_procd_privilege_lines_that_need_ujail() {
    // procd applies capabilities/no_new_privs/user only inside a ujail
    // (procd_add_jail): without one such lines do nothing. The daemon
    // drops privileges itself.
    let init = read(&files().join("postern.init"));
    for line in init.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for word in ["capabilities", "no_new_privs", "procd_set_param user"] {
            assert!(!line.contains(word), "postern.init: {line}");
        }
    }
    assert!(!files().join("postern.capabilities.json").exists());
}

#[test]
fn ipk_postinst_creates_the_postern_user() {
    let (tmp, ipk) = build_ipk(
        &["--arch", "x86_64", "--binary", EXE, "--allow-dynamic"],
        "user",
    );
    let d = tmp.dir.as_path();
    let name = ipk.file_name().unwrap().to_str().unwrap().to_string();
    tar(&["-xzf", &name], d);
    let control = tar(&["-xzOf", "control.tar.gz", "./control"], d);
    let f = control_fields(&control);
    assert_eq!(field(&f, "Require-User"), "postern=370:postern=370");
    let postinst = tar(&["-xzOf", "control.tar.gz", "./postinst"], d);
    // An offline root whose functions.sh has no add_group_and_user: the
    // script's own fallback adds the user and group, once.
    let root = d.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/ash\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:*:0:0:99999:7:::\n").unwrap();
    std::fs::write(
        root.join("lib/functions.sh"),
        "default_postinst() { return 0; }\n",
    )
    .unwrap();
    let script = d.join("postinst.sh");
    std::fs::write(&script, postinst).unwrap();
    for _ in 0..2 {
        let out = Command::new("sh")
            .arg(&script)
            .arg("configure")
            .env("IPKG_INSTROOT", &root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let passwd = read(&root.join("etc/passwd"));
    assert_eq!(
        passwd
            .lines()
            .filter(|l| l.starts_with("postern:"))
            .collect::<Vec<_>>(),
        ["postern:x:370:370:postern:/var/run/postern:/bin/false"]
    );
    let group = read(&root.join("etc/group"));
    assert_eq!(
        group.lines().filter(|l| l.starts_with("postern:")).count(),
        1
    );
}

/// The ipk's postrm takes the fw3 `config include` out and reloads the
/// firewall (a stub `uci` records its calls; the firewall init script of
/// this host does not exist, so only `uci` is seen).
#[test]
fn ipk_postrm_removes_the_fw3_include() {
    let (tmp, ipk) = build_ipk(
        &["--arch", "x86_64", "--binary", EXE, "--allow-dynamic"],
        "postrm",
    );
    let d = tmp.dir.as_path();
    let name = ipk.file_name().unwrap().to_str().unwrap().to_string();
    tar(&["-xzf", &name], d);
    let postrm = tar(&["-xzOf", "control.tar.gz", "./postrm"], d);
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = d.join("uci.log");
    let uci = bin.join("uci");
    std::fs::write(
        &uci,
        format!("#!/bin/sh\necho \"$*\" >>{}\n", log.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("0755")
        .arg(&uci)
        .status()
        .unwrap();
    let script = d.join("postrm.sh");
    std::fs::write(&script, postrm).unwrap();
    let out = Command::new("sh")
        .arg(&script)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("IPKG_INSTROOT")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        read(&log),
        "-q get firewall.postern\n-q delete firewall.postern\n-q commit firewall\n"
    );
}
