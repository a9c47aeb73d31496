//! The procd init script (`openwrt/postern/files/postern.init`) run by a
//! stub `/etc/rc.common` with stubs of procd, UCI, netifd's `network.sh`,
//! `uci` and `logger` that record what the script asks for.
//!
//! The stub procd answers a service update as procd's `instance_update`
//! does (procd `service/instance.c`): no instance before → start; the
//! instance changed (command line, or a watched file's content) → the
//! `reload_signal` if one was set, else a restart; unchanged → nothing; no
//! instance any more → stop. The stub `rc.common` has the real one's procd
//! verbs: `start` sends the service, `stop` runs `stop_service` and deletes
//! it, `restart` is stop + start, `reload` is `reload_service` (or `start`).
//!
//! What the stubs cannot show: how procd delivers interface events (which
//! ones, its 1 s debounce), what the real netifd answers while a PPPoE link
//! dials, busybox `jshn`'s JSON, procd's own restart timing (the old
//! process's exit against the new one's start), and anything the daemon
//! then does: that is what tests/netns_lifecycle.rs and
//! tests/netns_link_loss.rs cover with the real binary.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The stub `/etc/rc.common`: rc.common's procd verbs around a procd model.
const RC_COMMON: &str = r#"
. "$IPKG_INSTROOT/lib/functions.sh"
initscript=$1
action=${2:-help}
shift 2
record() { echo "$*" >>"$IPKG_INSTROOT/calls"; }
# A function: busybox ash runs its own applets (logger is one) before PATH.
logger() { record "logger $*"; }

start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }

. "$initscript"

P="$IPKG_INSTROOT/procd"
mkdir -p "$P"
procd_open_service() { : >"$P/new"; : >"$P/triggers"; }
procd_open_instance() { echo instance >>"$P/new"; }
procd_set_param() {
	local t="$1"; shift
	case "$t" in
	file) echo "file $* $(md5sum <"$IPKG_INSTROOT$1" | cut -c1-32)" >>"$P/new" ;;
	*) echo "$t $*" >>"$P/new" ;;
	esac
}
procd_append_param() { local t="$1"; shift; echo "$t+ $*" >>"$P/new"; }
procd_close_instance() { :; }
procd_add_reload_trigger() { echo "config.change $* reload" >>"$P/triggers"; }
procd_add_reload_interface_trigger() { echo "interface.* $1 reload" >>"$P/triggers"; }
procd_add_interface_trigger() { shift; echo "interface.* $*" >>"$P/triggers"; }
# procd's instance_update, for the one instance this service has.
procd_close_service() {
	service_triggers
	if ! grep -q '^instance' "$P/new"; then
		[ -f "$P/running" ] && record "procd: stop" && rm -f "$P/running"
	elif [ ! -f "$P/running" ]; then
		record "procd: start $(sed -n 's/^command //p; s/^command+ //p' "$P/new" | tr '\n' ' ')"
		cp "$P/new" "$P/running"
	elif ! cmp -s "$P/new" "$P/running"; then
		if grep -q '^reload_signal ' "$P/running"; then
			record "procd: signal $(sed -n 's/^reload_signal //p' "$P/running")"
		else
			record "procd: restart"
		fi
		cp "$P/new" "$P/running"
	fi
	return 0
}
procd_kill() { [ ! -f "$P/running" ] || record "procd: stop"; rm -f "$P/running"; }

start() { procd_open_service; start_service "$@"; procd_close_service; }
stop() { stop_service "$@"; procd_kill postern "$1"; }
restart() { stop "$@"; start "$@"; }
reload() {
	if type reload_service >/dev/null 2>&1; then reload_service "$@"; else start; fi
}
$action "$@"
"#;

/// The stub `/lib/functions.sh`: UCI files read by defining `config`,
/// `option` and `list` and sourcing the file (UCI's syntax is shell words).
const FUNCTIONS_SH: &str = r#"
config() { SECTION=$2; }
option() { eval "CFG_${SECTION}_$1=\$2"; }
list() { eval "CFG_${SECTION}_$1=\"\${CFG_${SECTION}_$1}\$2
\""; }
config_load() {
	unset $(set | sed -n 's/^\(CFG_[A-Za-z0-9_]*\)=.*/\1/p')
	. "$IPKG_INSTROOT/etc/config/$1"
}
config_get() { eval "$1=\${CFG_$2_$3:-\$4}"; }
config_get_bool() {
	local v
	config_get v "$2" "$3" "$4"
	case "$v" in 1|on|true|yes|enabled) v=1 ;; *) v=0 ;; esac
	eval "$1=\$v"
}
config_list_foreach() {
	local section="$1" option="$2" fn="$3" item oifs="$IFS"
	eval "items=\${CFG_${section}_${option}}"
	IFS='
'
	for item in $items; do IFS="$oifs"; "$fn" "$item"; done
	IFS="$oifs"
}
"#;

/// The stub `network.sh`: netifd's state as files the test writes:
/// `net/NET.l3` (the up interface's device), `net/NET.dev` (its configured
/// device), `net/NET.uci-OPTION` (`network.NET.OPTION`, read through the
/// `uci` stub).
const NETWORK_SH: &str = r#"
network_get_device() {
	[ -s "$IPKG_INSTROOT/net/$2.l3" ] || return 1
	eval "$1=\$(cat \"\$IPKG_INSTROOT/net/\$2.l3\")"
}
network_get_physdev() {
	[ -s "$IPKG_INSTROOT/net/$2.dev" ] || return 1
	eval "$1=\$(cat \"\$IPKG_INSTROOT/net/\$2.dev\")"
}
"#;

const UCI: &str = r#"#!/bin/sh
echo "uci $*" >>"$IPKG_INSTROOT/calls"
[ "$1" = -q ] && shift
[ "$1" = get ] || exit 1
key=${2#network.}
net=${key%%.*}
opt=${key#"$net".}
[ -s "$IPKG_INSTROOT/net/$net.uci-$opt" ] && cat "$IPKG_INSTROOT/net/$net.uci-$opt" && exit 0
exit 1
"#;

/// A router as the stubs see it.
struct Router {
    root: PathBuf,
    shell: &'static str,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Router {
    fn new(tag: &str, shell: &'static str) -> Router {
        let root = std::env::temp_dir().join(format!(
            "postern-init-{tag}-{}-{}",
            shell.replace(' ', "_"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "etc/init.d",
            "etc/config",
            "lib/functions",
            "bin",
            "net",
            "var/run",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let write = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
        write("etc/rc.common", RC_COMMON);
        write("lib/functions.sh", FUNCTIONS_SH);
        write("lib/functions/network.sh", NETWORK_SH);
        write("bin/uci", UCI);
        std::fs::copy(
            repo().join("openwrt/postern/files/postern.init"),
            root.join("etc/init.d/postern"),
        )
        .unwrap();
        let chmod = Command::new("chmod")
            .arg("755")
            .arg(root.join("bin/uci"))
            .status()
            .unwrap();
        assert!(chmod.success());
        Router { root, shell }
    }

    fn config(&self, main: &str) {
        std::fs::write(
            self.root.join("etc/config/postern"),
            format!("config postern 'main'\n{main}"),
        )
        .unwrap();
    }

    /// netifd's view of `net`: its protocol, configured device and (when up)
    /// layer-3 device; `None` removes the file.
    fn network(&self, net: &str, proto: &str, dev: Option<&str>, l3: Option<&str>) {
        let put = |ext: &str, v: Option<&str>| {
            let p = self.root.join(format!("net/{net}.{ext}"));
            match v {
                Some(v) => std::fs::write(p, v).unwrap(),
                None => {
                    let _ = std::fs::remove_file(p);
                }
            }
        };
        put("uci-proto", Some(proto));
        put("dev", dev);
        put("l3", l3);
    }

    /// Runs `/etc/init.d/postern VERB` and returns what procd was asked
    /// (and what it answered), one line each; the log is then cleared.
    fn run(&self, verb: &str) -> Vec<String> {
        let mut argv = self.shell.split(' ');
        let out = Command::new(argv.next().unwrap())
            .args(argv)
            .arg(self.root.join("etc/rc.common"))
            .arg(self.root.join("etc/init.d/postern"))
            .arg(verb)
            .env("IPKG_INSTROOT", &self.root)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.root.join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success() || verb == "start",
            "{verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = self.root.join("calls");
        let log = std::fs::read_to_string(&calls).unwrap_or_default();
        let _ = std::fs::remove_file(&calls);
        log.lines()
            .filter(|l| !l.starts_with("uci "))
            .map(str::to_string)
            .collect()
    }

    fn triggers(&self) -> String {
        std::fs::read_to_string(self.root.join("procd/triggers")).unwrap_or_default()
    }

    fn running(&self) -> String {
        std::fs::read_to_string(self.root.join("procd/running")).unwrap_or_default()
    }
}

const DAEMON: &str = "/usr/sbin/postern daemon -c /etc/config/postern";

fn start_line(devices: &[&str]) -> String {
    let mut s = format!("procd: start {DAEMON} ");
    for d in devices {
        s += &format!("-i {d} ");
    }
    s
}

/// The shells the script runs under: OpenWrt's busybox ash when present
/// (required in CI), and dash (Debian's sh, what shellcheck checks against).
fn shells(test: &str) -> Vec<&'static str> {
    let mut v = vec!["dash"];
    if Command::new("busybox").arg("true").status().is_ok() {
        v.push("busybox sh");
    } else {
        assert!(!in_ci(), "{test}: busybox must be installed in CI");
        eprintln!("\n*** SKIPPED {test} under busybox ash: busybox not installed ***\n");
    }
    v
}

const PPPOE_WAN: &str = "\toption enabled '1'\n\tlist interface 'wan'\n";

#[test]
fn pppoe_down_at_boot_captures_pppoe_wan_not_its_ethernet() {
    for sh in shells("pppoe_down_at_boot_captures_pppoe_wan_not_its_ethernet") {
        let r = Router::new("boot", sh);
        r.config(PPPOE_WAN);
        // Boot: PPPoE not dialled yet, so wan has no layer-3 device; its
        // Ethernet is eth0.2.
        r.network("wan", "pppoe", Some("eth0.2"), None);
        assert_eq!(r.run("start"), [start_line(&["pppoe-wan"])], "{sh}");
        assert!(r.running().contains("reload_signal HUP"), "{sh}");
        assert!(!r.running().contains("netdev"), "{sh}");
        assert_eq!(
            r.triggers(),
            "config.change postern reload\ninterface.* wan reload\n",
            "{sh}"
        );
        // The link dials, drops, redials: the device name stays, so
        // procd restarts nothing and signals nothing.
        r.network("wan", "pppoe", Some("eth0.2"), Some("pppoe-wan"));
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}: up");
        r.network("wan", "pppoe", Some("eth0.2"), None);
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}: down");
        r.network("wan", "pppoe", Some("eth0.2"), Some("pppoe-wan"));
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}: up again");
    }
}

#[test]
fn a_settings_change_is_a_hup_a_device_or_backend_change_a_restart() {
    for sh in shells("a_settings_change_is_a_hup_a_device_or_backend_change_a_restart") {
        let r = Router::new("apply", sh);
        r.config(PPPOE_WAN);
        r.network("wan", "dhcp", Some("eth0.2"), Some("eth0.2"));
        r.network("lan", "static", Some("br-lan"), Some("br-lan"));
        assert_eq!(r.run("start"), [start_line(&["eth0.2"])], "{sh}");

        // Save & Apply of another setting: the daemon reloads (SIGHUP).
        r.config(&format!("{PPPOE_WAN}\toption spa_port '4000'\n"));
        assert_eq!(r.run("reload"), ["procd: signal HUP"], "{sh}");
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}: nothing new");

        // Another network: the command line changes, so a restart.
        r.config(&format!(
            "{PPPOE_WAN}\toption spa_port '4000'\n\tlist interface 'lan'\n"
        ));
        let calls = r.run("reload");
        assert_eq!(
            calls[1..],
            ["procd: stop".to_string(), start_line(&["eth0.2", "br-lan"])],
            "{sh}: {calls:?}"
        );
        assert!(calls[0].starts_with("logger -t postern restarting"), "{sh}");

        // The backend, the user, the state directory: read only at start.
        for extra in [
            "\toption backend 'nft'\n",
            "\toption user 'root'\n",
            "\toption state_dir '/tmp/postern'\n",
        ] {
            let text = std::fs::read_to_string(r.root.join("etc/config/postern")).unwrap();
            r.config(
                &(text
                    .trim_start_matches("config postern 'main'\n")
                    .to_string()
                    + extra),
            );
            let calls = r.run("reload");
            assert_eq!(
                calls[1..],
                ["procd: stop".to_string(), start_line(&["eth0.2", "br-lan"])],
                "{sh}: {extra}: {calls:?}"
            );
        }

        // A raw device next to a network's device, listed twice: once.
        let text = std::fs::read_to_string(r.root.join("etc/config/postern")).unwrap();
        r.config(
            &(text
                .trim_start_matches("config postern 'main'\n")
                .to_string()
                + "\tlist device 'eth9'\n\tlist device 'br-lan'\n"),
        );
        let calls = r.run("reload");
        assert_eq!(
            calls[1..],
            [
                "procd: stop".to_string(),
                start_line(&["eth0.2", "br-lan", "eth9"])
            ],
            "{sh}: {calls:?}"
        );

        // Switched off: stopped.
        r.config("\toption enabled '0'\n\tlist interface 'wan'\n");
        let calls = r.run("reload");
        assert_eq!(calls.last().unwrap(), "procd: stop", "{sh}: {calls:?}");
        assert_eq!(r.running(), "", "{sh}");
    }
}

#[test]
fn a_network_whose_device_changes_restarts_one_that_vanishes_keeps_its_last() {
    for sh in shells("a_network_whose_device_changes_restarts_one_that_vanishes_keeps_its_last") {
        let r = Router::new("move", sh);
        r.config(PPPOE_WAN);
        // A Wi-Fi client uplink: while not associated netifd knows no device.
        r.network("wan", "dhcp", None, Some("phy0-sta0"));
        assert_eq!(r.run("start"), [start_line(&["phy0-sta0"])], "{sh}");
        r.network("wan", "dhcp", None, None);
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}: gone");
        // wan re-configured as PPPoE: a new device name, a restart.
        r.network("wan", "pppoe", Some("eth0.2"), None);
        let calls = r.run("reload");
        assert_eq!(
            calls[1..],
            ["procd: stop".to_string(), start_line(&["pppoe-wan"])],
            "{sh}: {calls:?}"
        );
        // Other PPP protocols are named the same way by netifd's ppp.sh.
        for proto in ["pppoa", "pptp", "ppp"] {
            r.network("wan", proto, None, None);
            let calls = r.run("reload");
            assert_eq!(
                calls.last().unwrap(),
                &start_line(&[&format!("{proto}-wan")]),
                "{sh}"
            );
        }
    }
}

#[test]
fn a_network_without_any_device_at_first_start_is_logged_and_skipped() {
    for sh in shells("a_network_without_any_device_at_first_start_is_logged_and_skipped") {
        let r = Router::new("none", sh);
        r.config(&format!("{PPPOE_WAN}\tlist interface 'wwan'\n"));
        r.network("wan", "dhcp", Some("eth0.2"), None);
        r.network("wwan", "dhcp", None, None);
        let calls = r.run("start");
        assert_eq!(
            calls,
            [
                "logger -t postern network 'wwan' has no device yet; postern follows it when it comes up"
                    .to_string(),
                start_line(&["eth0.2"])
            ],
            "{sh}"
        );
        // It comes up: a restart with it.
        r.network("wwan", "dhcp", None, Some("phy1-sta0"));
        let calls = r.run("reload");
        assert_eq!(
            calls[1..],
            [
                "procd: stop".to_string(),
                start_line(&["eth0.2", "phy1-sta0"])
            ],
            "{sh}: {calls:?}"
        );
        // Nothing at all: no instance, and the reason is logged.
        let r = Router::new("nodev", sh);
        r.config("\toption enabled '1'\n");
        let calls = r.run("start");
        assert_eq!(calls.len(), 1, "{sh}: {calls:?}");
        assert!(calls[0].contains("no capture device"), "{sh}");
        assert_eq!(r.running(), "", "{sh}");
    }
}

#[test]
fn an_alias_network_captures_the_device_of_the_network_it_rides_on() {
    for sh in shells("an_alias_network_captures_the_device_of_the_network_it_rides_on") {
        let r = Router::new("alias", sh);
        r.config(&format!("{PPPOE_WAN}\tlist interface 'wan6'\n"));
        // wan6 (DHCPv6 on '@wan') and wan (PPPoE), both down at boot.
        r.network("wan", "pppoe", Some("eth0.2"), None);
        r.network("wan6", "dhcpv6", None, None);
        std::fs::write(r.root.join("net/wan6.uci-device"), "@wan").unwrap();
        assert_eq!(r.run("start"), [start_line(&["pppoe-wan"])], "{sh}");
        // Both up: netifd gives wan6 the PPPoE device too. Nothing changes.
        r.network("wan", "pppoe", Some("eth0.2"), Some("pppoe-wan"));
        r.network("wan6", "dhcpv6", None, Some("pppoe-wan"));
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}");
        // Only wan6 listed, and netifd knows no device at all: the last one.
        r.config("\toption enabled '1'\n\tlist interface 'wan6'\n");
        assert_eq!(r.run("reload"), ["procd: signal HUP"], "{sh}");
        r.network("wan6", "dhcpv6", None, None);
        r.network("wan", "dhcp", None, None);
        assert_eq!(r.run("reload"), Vec::<String>::new(), "{sh}");
        assert!(r.running().contains("command+ -i pppoe-wan"), "{sh}");
        assert_eq!(
            r.triggers(),
            "config.change postern reload\ninterface.* wan6 reload\n",
            "{sh}"
        );
    }
}
