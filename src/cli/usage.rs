//! The command line's usage text, one entry per subcommand: `postern help`,
//! `postern help SUB`, `postern SUB --help`, the option check (unknown
//! options and their closest match) and the man page (`postern.8`, compared
//! with this table by tests/man_page.rs) all read it. A new subcommand is one
//! [`Command`]; a new option is one line in its `options` and its mention
//! in a `synopsis`.

/// One way to call a subcommand: its synopsis and what it does.
pub struct Form {
    /// The arguments after `postern` (the subcommand first); `\n` continues
    /// a long synopsis on the next line.
    pub synopsis: &'static str,
    /// What this form does, wrapped for a terminal (about 72 columns).
    pub about: &'static str,
}

/// A subcommand.
pub struct Command {
    /// The subcommand's name (`postern NAME`).
    pub name: &'static str,
    /// Its forms, as `help` prints them.
    pub forms: &'static [Form],
    /// Every option it takes, one per entry: its spellings (`-c --config`),
    /// then the value's name if it takes one (`FILE`). `-h`/`--help` and
    /// `-V`/`--version` are everyone's and not listed.
    pub options: &'static [&'static str],
    /// In the desktop build only (feature `desktop`): not in a router build.
    pub desktop: bool,
}

impl Command {
    /// The entry of `options` spelled `spelling`, and whether it takes a value.
    pub fn option(&self, spelling: &str) -> Option<bool> {
        self.options.iter().find_map(|entry| {
            let mut words = entry.split(' ');
            let found = words.clone().any(|w| w == spelling && w.starts_with('-'));
            found.then(|| words.any(|w| !w.starts_with('-')))
        })
    }

    /// Every spelling of every option.
    pub fn spellings(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.options
            .iter()
            .flat_map(|entry| entry.split(' '))
            .filter(|w| w.starts_with('-'))
    }
}

/// The first lines of `postern help`.
pub const HEADER: &str = "postern — port knocking and Single Packet Authorization for routers";

/// What the exit status means, for `postern help` and the man page.
pub const EXIT_STATUS: &str = "\
0: success. 1: the command ran and failed (a config with errors, a daemon
that does not answer or refuses, a host that cannot be reached). 2: a usage
error (unknown subcommand or option, a missing or malformed argument).";

/// Every subcommand, in the order `postern help` lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "daemon",
        forms: &[Form {
            synopsis: "daemon [-c FILE] [-i DEV]... [--backend KIND] [--log-level LEVEL]\n[--control SOCKET]",
            about: "\
Guard the ports of FILE's sequences and clients (default
/etc/config/postern), sniffing on each DEV. KIND: auto | fw4 | fw3 |
nft | dry-run. LEVEL: error | warn | info | debug | trace. SIGHUP
reloads FILE (a bad file is refused, the old one stays); SIGTERM stops
and removes postern's own nftables table. Live grants are re-applied
when the firewall is restarted under it. SOCKET: the control socket
(default /var/run/postern.sock).",
        }],
        options: &[
            "-c --config FILE",
            "-i --interface DEV",
            "--backend KIND",
            "--log-level LEVEL",
            "--control SOCKET",
        ],
        desktop: false,
    },
    Command {
        name: "status",
        forms: &[Form {
            synopsis: "status [--json | --watch] [-s SOCKET]",
            about: "\
Live grants and counters of the running daemon (default socket
/var/run/postern.sock); --watch redraws them every second.",
        }],
        options: &["--json", "-w --watch", "-s --socket SOCKET"],
        desktop: false,
    },
    Command {
        name: "revoke",
        forms: &[Form {
            synopsis: "revoke ADDR PROTO:PORT [-s SOCKET]",
            about: "End the live grant of ADDR to PROTO:PORT now (e.g. 192.0.2.7 tcp:22).",
        }],
        options: &["-s --socket SOCKET"],
        desktop: false,
    },
    Command {
        name: "unban",
        forms: &[Form {
            synopsis: "unban NET [-s SOCKET]",
            about: "Lift the live bans within NET (an address or ADDR/LEN) now.",
        }],
        options: &["-s --socket SOCKET"],
        desktop: false,
    },
    Command {
        name: "peer-sync",
        forms: &[Form {
            synopsis: "peer-sync [-s SOCKET]",
            about: "\
Ask the peer routers (config peer) for their live state now;
keepalived's NOTIFY_MASTER hook runs it. See docs/ha.md.",
        }],
        options: &["-s --socket SOCKET"],
        desktop: false,
    },
    Command {
        name: "check",
        forms: &[Form {
            synopsis: "check [-c FILE] [--json]",
            about: "\
Validate FILE (default /etc/config/postern): every error with
file:line (exit 1), or a summary. --json: ok, errors (line, message
each) and warnings, as JSON.",
        }],
        options: &["-c --config FILE", "--json"],
        desktop: false,
    },
    Command {
        name: "schema",
        forms: &[Form {
            synopsis: "schema [--json]",
            about: "Every config section type and its options, as JSON.",
        }],
        options: &["--json"],
        desktop: false,
    },
    Command {
        name: "fw3-forwards",
        forms: &[Form {
            synopsis: "fw3-forwards [-c FILE]",
            about: "\
Print the iptables DNAT rules of FILE's enabled forwards (run by the
fw3 firewall include; OpenWrt 21.02 and older).",
        }],
        options: &["-c --config FILE"],
        desktop: false,
    },
    Command {
        name: "keygen",
        forms: &[Form {
            synopsis: "keygen [--require-address] [NAME]",
            about: "\
Print a new random key with the router's 'config client' section and
the client's stanza, ready to paste. --require-address: the router
refuses this client's packets that do not name their address (option
require_address), and the stanza resolves it with STUN.",
        }],
        options: &["--require-address"],
        desktop: false,
    },
    Command {
        name: "knock",
        forms: &[
            Form {
                synopsis: "knock [--delay MS] [--verbose] HOST PROTO:PORT...",
                about: "Send a knock sequence, e.g. postern knock 192.0.2.1 tcp:7000 udp:8000 tcp:9000",
            },
            Form {
                synopsis: "knock [HOST] --totp --base PORT [--range N] [--length N] [--period S]\n[--proto tcp|udp] (--key B64 | --key-file F | --stanza NAME) [--print]",
                about: "\
Send the current time-derived sequence of a 'config sequence' with a
key; --print shows it instead, as Debian's knock client takes it.
Defaults as on the router: --range 12288 --length 6 --period 30
--proto tcp.",
            },
            Form {
                synopsis: "knock HOST --encode PROTO/PORT --profile NAME [-c FILE] [--minutes M]",
                about: "\
Knock a sequence that spells PROTO/PORT, laid out by the 'config
encoded' section NAME of FILE (default ~/.config/postern/client.conf).",
            },
            Form {
                synopsis: "knock HOST --auth -A PROTO/PORT --base PORT [--proto tcp|udp]\n[--minutes M | --close] [--source ADDR] (--key B64 | --key-file F | --stanza NAME)",
                about: "\
Send 12 knocks carrying a request sealed with the client's key and
bound to ADDR (default: this machine's address towards HOST; behind NAT
give the public one). See docs/knock-modes.md.",
            },
        ],
        options: &[
            "-d --delay MS",
            "--totp",
            "--encode PROTO/PORT",
            "--auth",
            "--print",
            "-A --access PROTO/PORT",
            "--profile NAME",
            "-n --stanza NAME",
            "-c --config FILE",
            "--key B64",
            "--key-file F",
            "--base PORT",
            "--range N",
            "--length N",
            "--period S",
            "--proto PROTO",
            "--minutes M",
            "--close",
            "--source ADDR",
            "-v --verbose",
        ],
        desktop: true,
    },
    Command {
        name: "spa",
        forms: &[Form {
            synopsis: "spa [HOST] [-A tcp/22[,udp/53]] [-s | -a ADDR | --resolve stun:SERVER[:PORT]]\n[--duration S] [--close] [--command NAME | --forward NAME] [--repeat N]\n[--key-file F | --key B64 | --stanza NAME] [-c CLIENTCONF] [-p PORT]\n[--verbose]",
            about: "\
Send one SPA packet asking HOST to open (or with --close, close) the
ports for this packet's source (-s, the default) or for ADDR (-a), or
for the address a STUN server sees this machine as (--resolve: sealed
in the packet, so a stolen copy opens nothing for the thief); or to
run the router's 'config command' NAME (--command), or to open its
'config forward' NAME to a LAN host for S seconds (--forward).
--repeat sends N copies 20 ms apart (lossy links; the router accepts
one). --stanza reads host, key, ports, port, duration, address and
resolve from CLIENTCONF (default ~/.config/postern/client.conf); flags
override it. PORT is the router's spa_port (default 62201); S defaults
to 30. -A may be left out (or be -A none) to ask for the client's
default_access. --verbose shows what is sent (never the key).",
        }],
        options: &[
            "-A --access PORTS",
            "-s --source",
            "-a --allow-ip ADDR",
            "--resolve URI",
            "-d --duration S",
            "--close",
            "--command NAME",
            "--forward NAME",
            "--repeat N",
            "--key B64",
            "--key-file F",
            "-n --stanza NAME",
            "-c --config CLIENTCONF",
            "-p --port PORT",
            "-v --verbose",
        ],
        desktop: true,
    },
    Command {
        name: "ssh-proxy",
        forms: &[Form {
            synopsis: "ssh-proxy [--stanza NAME] [-c CLIENTCONF] [--key-file F | --key B64]\n[-A tcp/22] [--knock PROTO:PORT,...] [--router HOST] [-p PORT] [-d S]\n[--wait S] [--fdpass | --relay] [--verbose] HOST PORT",
            about: "\
An OpenSSH ProxyCommand (ProxyCommand postern ssh-proxy --stanza home
%h %p): sends the SPA request for tcp:PORT (or the knocks) to the
router (the stanza's host, else HOST), retries the connect to HOST's
addresses in order for up to S seconds (default 10), then relays
stdin/stdout, or under ProxyUseFdpass yes hands the connected socket
to ssh.",
        }],
        options: &[
            "-n --stanza NAME",
            "-c --config CLIENTCONF",
            "--key B64",
            "--key-file F",
            "-A --access PORTS",
            "--knock PROTO:PORT,...",
            "--router HOST",
            "-p --port PORT",
            "-d --duration S",
            "--wait S",
            "--fdpass",
            "--relay",
            "-v --verbose",
        ],
        desktop: true,
    },
    Command {
        name: "import",
        forms: &[
            Form {
                synopsis: "import fwknopd ACCESS_CONF [FWKNOPD_CONF]",
                about: "\
Print a postern config converted from fwknopd's access.conf (and
fwknopd.conf) or OpenWrt's /etc/config/fwknopd; a warning on stderr for
each option with no postern equivalent.",
            },
            Form {
                synopsis: "import knockd KNOCKD_CONF",
                about: "The same for knockd.conf.",
            },
        ],
        options: &[],
        desktop: true,
    },
    Command {
        name: "demo",
        forms: &[Form {
            synopsis: "demo",
            about: "\
(root) Build a router and a client network namespace, guard a service
in the router, knock it open from the client, watch it close again.",
        }],
        options: &[],
        desktop: true,
    },
    Command {
        name: "help",
        forms: &[Form {
            synopsis: "help [SUBCOMMAND]",
            about: "\
This text, or one subcommand's (as postern SUBCOMMAND --help or -h).",
        }],
        options: &[],
        desktop: false,
    },
    Command {
        name: "version",
        forms: &[Form {
            synopsis: "version",
            about: "The version (as --version or -V, after any subcommand too).",
        }],
        options: &[],
        desktop: false,
    },
];

/// The subcommand called `name`, in either build.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Whether this build has `cmd` (a router build has no desktop commands).
pub fn in_this_build(cmd: &Command) -> bool {
    !cmd.desktop || cfg!(feature = "desktop")
}

/// Writes one command's forms as `help` shows them.
pub fn write_command(out: &mut String, cmd: &Command) {
    for form in cmd.forms {
        for (i, line) in form.synopsis.split('\n').enumerate() {
            out.push_str(if i == 0 { "  postern " } else { "          " });
            out.push_str(line);
            out.push('\n');
        }
        for line in form.about.split('\n') {
            out.push_str("        ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// `postern help`: every subcommand of this build (`desktop`: the desktop
/// build's), the common options and the exit status.
pub fn overview(desktop: bool) -> String {
    let mut out = String::from(HEADER);
    out.push_str("\n\nusage:\n");
    for cmd in COMMANDS.iter().filter(|c| desktop || !c.desktop) {
        write_command(&mut out, cmd);
    }
    if !desktop {
        out.push_str("\n(a router build: knock, spa, import and demo are in the desktop build)\n");
    }
    out.push_str(COMMON);
    out
}

/// `postern help SUB` and `postern SUB --help`.
pub fn of(cmd: &Command) -> String {
    let mut out = String::from("usage:\n");
    write_command(&mut out, cmd);
    if !in_this_build(cmd) {
        out.push_str("\n(in the desktop build only; this is a router build)\n");
    }
    out.push_str(COMMON);
    out
}

const COMMON: &str = "
Every subcommand takes -h/--help (its usage) and -V/--version.
exit status: 0: success. 1: the command ran and failed. 2: a usage error.
";
