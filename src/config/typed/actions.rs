//! `config command` and `config forward` sections, and the clients' `list
//! command` / `list forward` references to them.
//!
//! Owns their rules: a command or forward needs a section name (clients name
//! it) of letters, digits and `_`, at most [`MAX_NAME_LEN`] long, unique per
//! type; `exec` is an argv (program as an absolute path, then arguments,
//! taken as-is: no shell); `fwknop_match` texts are unique; two enabled
//! forwards never share `proto`/`port`, and a forward's port is neither the
//! SPA port nor a knock step; every name a client lists exists.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use super::{did_you_mean, get_bool, get_choice, get_port, get_secs, items, single, Errors};
use crate::config::actions::{
    Command, Forward, NamedForward, DEFAULT_COMMAND_TIMEOUT, MAX_COMMANDS, MAX_EXEC_ARGS,
    MAX_EXEC_ARG_LEN, MAX_FORWARDS, MAX_FWKNOP_MATCH,
};
use crate::config::uci::{Entry, Section};
use crate::config::Main;
use crate::port::{L4Proto, PortSpec};
use crate::spa::request::MAX_NAME_LEN;

/// Options of `config command`.
pub(super) const COMMAND_OPTIONS: &[&str] = &["enabled", "exec", "timeout", "user", "fwknop_match"];
/// Options of `config forward`.
pub(super) const FORWARD_OPTIONS: &[&str] = &["enabled", "proto", "port", "to", "to6", "to_port"];

const PROTOS: &[(&str, L4Proto)] = &[("tcp", L4Proto::Tcp), ("udp", L4Proto::Udp)];

/// Whether `s` can name a command or forward (and travel in a native SPA request).
pub fn is_action_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The rule [`is_action_name`] checks, for messages.
pub(super) const NAME_RULE: &str = "names are 1-32 letters, digits or _";

/// The section's name, which clients refer to; reports a missing or bad one.
fn section_name(cx: &mut Errors, s: &Section) -> Option<String> {
    match &s.name {
        Some(n) if is_action_name(n) => Some(n.clone()),
        Some(n) => {
            cx.push(s.line, format!("{} '{n}': {NAME_RULE}", s.kind));
            None
        }
        None => {
            let msg = format!(
                "config {0} needs a name that clients can list, e.g. config {0} 'wake_nas'",
                s.kind
            );
            cx.push(s.line, msg);
            None
        }
    }
}

/// A `config command` section.
pub(super) fn command(cx: &mut Errors, s: &Section, label: &str) -> Option<Command> {
    let before = cx.count();
    super::check_names(cx, s, label, COMMAND_OPTIONS);
    let name = section_name(cx, s);
    let opt = |n: &str| s.get(n);
    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let timeout = opt("timeout").map_or(Some(Duration::from_secs(DEFAULT_COMMAND_TIMEOUT)), |e| {
        get_secs(cx, e, 1, 3600)
    });
    let argv = match opt("exec") {
        Some(e) => exec(cx, e),
        None => {
            let msg = format!(
                "{label} has nothing to run: add list exec '/path/to/program' and one list exec line per argument"
            );
            cx.push(s.line, msg);
            None
        }
    };
    let user = opt("user").and_then(|e| super::get_user_name(cx, e));
    let fwknop_match = opt("fwknop_match").and_then(|e| {
        let v = single(cx, e)?;
        let ok = v.len() <= MAX_FWKNOP_MATCH && v.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !ok {
            let msg = format!(
                "fwknop_match must be printable ASCII, at most {MAX_FWKNOP_MATCH} characters (the text of fwknop -C)"
            );
            cx.push(e.line, msg);
        }
        ok.then(|| v.to_string())
    });
    if cx.count() != before {
        return None;
    }
    Some(Command {
        name: name?,
        enabled,
        argv: argv?,
        timeout: timeout?,
        user,
        fwknop_match,
        line: s.line,
    })
}

/// `list exec`: an absolute program path, then arguments, each taken literally.
fn exec(cx: &mut Errors, e: &Entry) -> Option<Vec<String>> {
    let args: Vec<(&str, usize)> = match &e.value {
        // `option exec` is one word: the program without arguments.
        crate::config::uci::Value::Single(_) => items(cx, e),
        crate::config::uci::Value::List(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), e.item_line(i)))
            .collect(),
    };
    let before = cx.count();
    if args.is_empty() {
        return None;
    }
    if args.len() > MAX_EXEC_ARGS {
        let msg = format!("exec has {} items; at most {MAX_EXEC_ARGS}", args.len());
        cx.push(e.line, msg);
    }
    let (program, line) = args[0];
    if !program.starts_with('/') {
        let msg = format!(
            "exec '{program}': the program must be an absolute path (no shell runs it, nothing searches PATH)"
        );
        cx.push(line, msg);
    }
    for &(a, line) in &args {
        if a.len() > MAX_EXEC_ARG_LEN || a.contains('\0') {
            let msg =
                format!("exec argument longer than {MAX_EXEC_ARG_LEN} bytes or with a NUL byte");
            cx.push(line, msg);
        }
    }
    (cx.count() == before).then(|| args.iter().map(|(a, _)| a.to_string()).collect())
}

/// A `config forward` section.
pub(super) fn forward(cx: &mut Errors, s: &Section, label: &str) -> Option<NamedForward> {
    let before = cx.count();
    super::check_names(cx, s, label, FORWARD_OPTIONS);
    let name = section_name(cx, s);
    let opt = |n: &str| s.get(n);
    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let proto = match opt("proto") {
        Some(e) => get_choice(cx, e, PROTOS),
        None => {
            cx.push(s.line, format!("{label} needs option proto 'tcp' or 'udp'"));
            None
        }
    };
    let port = match opt("port") {
        Some(e) => get_port(cx, e),
        None => {
            let msg = format!("{label} needs option port: the router's port clients connect to");
            cx.push(s.line, msg);
            None
        }
    };
    let to4 = opt("to").and_then(|e| {
        let v = single(cx, e)?;
        match v.parse::<Ipv4Addr>() {
            Ok(a) if lan_host(IpAddr::V4(a)) => Some(a),
            _ => {
                let msg = format!("to '{v}' is not the IPv4 address of a host (use to6 for IPv6)");
                cx.push(e.line, msg);
                None
            }
        }
    });
    let to6 = opt("to6").and_then(|e| {
        let v = single(cx, e)?;
        match v.parse::<Ipv6Addr>() {
            Ok(a) if lan_host(IpAddr::V6(a)) => Some(a),
            _ => {
                cx.push(
                    e.line,
                    format!("to6 '{v}' is not the IPv6 address of a host"),
                );
                None
            }
        }
    });
    if opt("to").is_none() && opt("to6").is_none() {
        let msg = format!(
            "{label} forwards nowhere: add option to 'LAN IPv4 address' and/or option to6 'LAN IPv6 address'"
        );
        cx.push(s.line, msg);
    }
    let to_port = match opt("to_port") {
        Some(e) => get_port(cx, e),
        None => port,
    };
    if cx.count() != before {
        return None;
    }
    Some(NamedForward {
        name: name?,
        forward: Forward {
            enabled,
            proto: proto?,
            port: port?,
            to4,
            to6,
            to_port: to_port?,
        },
    })
}

/// A unicast address a forward can point at.
fn lan_host(a: IpAddr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.is_loopback()
        || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
}

/// A client's `list command` or `list forward` names (syntax only; [`references`]
/// checks that they exist).
pub(super) fn client_names(cx: &mut Errors, e: &Entry) -> Option<Vec<String>> {
    super::get_names(cx, e, is_action_name, NAME_RULE)
}

/// Checks across commands, forwards and clients (see the module docs).
pub(super) fn cross_check(
    cx: &mut Errors,
    sections: &[Section],
    main: &Main,
    knock_ports: &[PortSpec],
    commands: &[Command],
    forwards: &[(NamedForward, usize)],
) {
    for (i, c) in commands.iter().enumerate() {
        if let Some(d) = commands[..i].iter().find(|d| d.name == c.name) {
            let msg = format!(
                "second command '{}' (the first is on line {})",
                c.name, d.line
            );
            cx.push(c.line, msg);
        }
    }
    let active: Vec<&Command> = commands.iter().filter(|c| c.enabled).collect();
    if let Some(c) = active.get(MAX_COMMANDS) {
        cx.push(
            c.line,
            format!("too many enabled commands: at most {MAX_COMMANDS}"),
        );
    }
    for (i, c) in active.iter().enumerate() {
        let Some(m) = &c.fwknop_match else { continue };
        if let Some(d) = active[..i]
            .iter()
            .find(|d| d.fwknop_match.as_ref() == Some(m))
        {
            let msg = format!(
                "command '{}' has the same fwknop_match as command '{}' (line {})",
                c.name, d.name, d.line
            );
            cx.push(c.line, msg);
        }
    }
    for (i, (f, line)) in forwards.iter().enumerate() {
        if let Some((_, l)) = forwards[..i].iter().find(|(d, _)| d.name == f.name) {
            let msg = format!("second forward '{}' (the first is on line {l})", f.name);
            cx.push(*line, msg);
        }
    }
    let active: Vec<&(NamedForward, usize)> =
        forwards.iter().filter(|(f, _)| f.forward.enabled).collect();
    if let Some((_, line)) = active.get(MAX_FORWARDS) {
        cx.push(
            *line,
            format!("too many enabled forwards: at most {MAX_FORWARDS}"),
        );
    }
    for (i, (f, line)) in active.iter().enumerate() {
        let p = PortSpec {
            proto: f.forward.proto,
            port: f.forward.port,
        };
        let same = |(d, _): &&&(NamedForward, usize)| {
            d.forward.proto == p.proto && d.forward.port == p.port
        };
        if let Some((d, l)) = active[..i].iter().find(same) {
            let msg = format!(
                "forward '{}' uses {p} like forward '{}' (line {l}): one router port forwards to one place",
                f.name, d.name
            );
            cx.push(*line, msg);
        }
        if p == PortSpec::udp(main.spa_port) {
            let msg = format!(
                "forward '{}' uses the SPA port {p}: pick another port",
                f.name
            );
            cx.push(*line, msg);
        }
        if knock_ports.contains(&p) {
            let msg = format!(
                "forward '{}' uses {p}, a knock step: pick another port",
                f.name
            );
            cx.push(*line, msg);
        }
    }
    references(cx, sections, commands, forwards);
}

/// Every `list command` / `list forward` item of a client names a section.
fn references(
    cx: &mut Errors,
    sections: &[Section],
    commands: &[Command],
    forwards: &[(NamedForward, usize)],
) {
    let command_names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    let forward_names: Vec<&str> = forwards.iter().map(|(f, _)| f.name.as_str()).collect();
    for s in sections.iter().filter(|s| s.kind == "client") {
        for (list, known) in [("command", &command_names), ("forward", &forward_names)] {
            let Some(e) = s.get(list) else { continue };
            let names: Vec<(String, usize)> = match &e.value {
                crate::config::uci::Value::Single(v) => vec![(v.clone(), e.line)],
                crate::config::uci::Value::List(v) => v
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), e.item_line(i)))
                    .collect(),
            };
            for (n, line) in names {
                if is_action_name(&n) && !known.contains(&n.as_str()) {
                    let msg = format!(
                        "{list} '{n}' is not a config {list} section{}",
                        did_you_mean(&n, known)
                    );
                    cx.push(line, msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, Config};
    use crate::port::L4Proto;
    use core::net::Ipv4Addr;
    use core::time::Duration;

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    fn ok(text: &str) -> Config {
        parse_str("postern", text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Every error as `line: message`.
    fn errors(text: &str) -> Vec<String> {
        parse_str("postern", text)
            .expect_err("should be refused")
            .iter()
            .map(|e| format!("{}: {}", e.line, e.message))
            .collect()
    }

    const GOOD: &str = "\
config command 'wake_nas'
\tlist exec '/usr/bin/etherwake'
\tlist exec '-i'
\tlist exec 'br-lan'
\tlist exec 'a; rm -rf / $(x)'
\toption timeout '10'
\toption user 'nobody'
\toption fwknop_match 'wake nas'

config forward 'nas_ssh'
\toption proto 'tcp'
\toption port '2222'
\toption to '192.168.1.10'
\toption to6 'fd00:1::10'
\toption to_port '22'

config forward 'web'
\toption proto 'udp'
\toption port '5000'
\toption to '192.168.1.11'

config client 'phone'
\toption key 'KEY'
\tlist command 'wake_nas'
\tlist forward 'nas_ssh'
\tlist forward 'web'
";

    #[test]
    fn commands_forwards_and_a_client_without_allow() {
        let c = ok(&GOOD.replace("KEY", KEY));
        let cmd = &c.commands[0];
        assert_eq!(cmd.name, "wake_nas");
        assert_eq!(
            cmd.argv,
            ["/usr/bin/etherwake", "-i", "br-lan", "a; rm -rf / $(x)"],
            "arguments are kept literally"
        );
        assert_eq!(cmd.timeout, Duration::from_secs(10));
        assert_eq!(cmd.user.as_deref(), Some("nobody"));
        assert_eq!(cmd.fwknop_match.as_deref(), Some("wake nas"));
        assert_eq!(cmd.line, 1);
        let f = &c.forwards[0];
        assert_eq!(f.name, "nas_ssh");
        assert_eq!(f.forward.proto, L4Proto::Tcp);
        assert_eq!((f.forward.port, f.forward.to_port), (2222, 22));
        assert_eq!(f.forward.to4, Some(Ipv4Addr::new(192, 168, 1, 10)));
        assert_eq!(f.forward.to6, Some("fd00:1::10".parse().unwrap()));
        let web = &c.forwards[1].forward;
        assert_eq!(
            (web.proto, web.port, web.to_port),
            (L4Proto::Udp, 5000, 5000)
        );
        assert_eq!(web.to6, None);
        let client = &c.clients[0];
        assert!(client.allow.is_empty());
        assert_eq!(client.commands, ["wake_nas"]);
        assert_eq!(client.forwards, ["nas_ssh", "web"]);
        let summary = crate::config::typed::summary(&c);
        assert!(summary.contains("wake_nas [enabled]: runs"), "{summary}");
        assert!(
            summary.contains("nas_ssh [enabled]: tcp:2222 -> 192.168.1.10:22, [fd00:1::10]:22"),
            "{summary}"
        );
        assert!(summary.contains("may run wake_nas; may open forward nas_ssh, web"));
    }

    #[test]
    fn command_errors_name_their_lines() {
        let text = "\
config command
\tlist exec '/bin/true'
config command 'rel'
\tlist exec 'reboot'
config command 'none'
\toption timeout '0'
config command 'u'
\tlist exec '/bin/true'
\toption user '-rf'
\toption fwknop_match 'tab\there'
";
        assert_eq!(
            errors(text),
            [
                "1: config command needs a name that clients can list, e.g. config command 'wake_nas'",
                "4: exec 'reboot': the program must be an absolute path (no shell runs it, nothing searches PATH)",
                "5: command 'none' has nothing to run: add list exec '/path/to/program' and one list exec line per argument",
                "6: timeout '0' is out of range (1 to 3600 seconds)",
                "9: user '-rf' is not a user name",
                "10: fwknop_match must be printable ASCII, at most 160 characters (the text of fwknop -C)",
            ]
        );
    }

    #[test]
    fn forward_errors_name_their_lines() {
        let text = "\
config forward 'a'
\toption port '22'
\toption to '10.0.0.255x'
config forward 'b'
\toption proto 'sctp'
\toption port '0'
config forward 'c'
\toption proto 'tcp'
\toption port '80'
\toption to6 '10.0.0.1'
config forward 'd'
\toption proto 'tcp'
\toption port '80'
\toption to '0.0.0.0'
";
        assert_eq!(
            errors(text),
            [
                "1: forward 'a' needs option proto 'tcp' or 'udp'",
                "3: to '10.0.0.255x' is not the IPv4 address of a host (use to6 for IPv6)",
                "4: forward 'b' forwards nowhere: add option to 'LAN IPv4 address' and/or option to6 'LAN IPv6 address'",
                "5: proto 'sctp' is not valid (did you mean 'tcp'?) (expected one of: tcp, udp)",
                "6: port '0' is not a port number (1-65535)",
                "10: to6 '10.0.0.1' is not the IPv6 address of a host",
                "14: to '0.0.0.0' is not the IPv4 address of a host (use to6 for IPv6)",
            ]
        );
    }

    #[test]
    fn long_names_are_refused() {
        let long = "n".repeat(33);
        let text = format!("config command '{long}'\n\tlist exec '/bin/true'\n");
        assert_eq!(
            errors(&text),
            [format!(
                "1: command '{long}': names are 1-32 letters, digits or _"
            )]
        );
    }

    #[test]
    fn cross_checks() {
        let text = "\
config postern
\toption spa_port '62201'
config sequence 's'
\tlist knock 'tcp:7000'
\tlist knock 'tcp:8000'
\tlist open 'tcp:22'
config command 'x'
\tlist exec '/bin/true'
\toption fwknop_match 'go'
config command 'y'
\tlist exec '/bin/true'
\toption fwknop_match 'go'
config forward 'f'
\toption proto 'tcp'
\toption port '7000'
\toption to '10.0.0.2'
config forward 'g'
\toption proto 'tcp'
\toption port '7000'
\toption to '10.0.0.3'
config forward 'h'
\toption proto 'udp'
\toption port '62201'
\toption to '10.0.0.3'
config client 'c'
\toption key 'KEY'
\tlist command 'z'
\tlist forward 'ff'
";
        assert_eq!(
            errors(&text.replace("KEY", KEY)),
            [
                "10: command 'y' has the same fwknop_match as command 'x' (line 7)",
                "13: forward 'f' uses tcp:7000, a knock step: pick another port",
                "17: forward 'g' uses tcp:7000 like forward 'f' (line 13): one router port forwards to one place",
                "17: forward 'g' uses tcp:7000, a knock step: pick another port",
                "21: forward 'h' uses the SPA port udp:62201: pick another port",
                "27: command 'z' is not a config command section",
                "28: forward 'ff' is not a config forward section",
            ]
        );
    }

    #[test]
    fn a_client_must_be_able_to_do_something() {
        let text = format!("config client 'c'\n\toption key '{KEY}'\n");
        assert_eq!(
            errors(&text),
            ["1: client 'c' may do nothing: add lines such as list allow 'tcp:22' (or list command / list forward)"]
        );
    }
}
