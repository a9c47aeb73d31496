//! knockd's `knockd.conf` into postern UCI.
//!
//! `[options]`: `Interface` → `list device`. Each other `[name]` section with
//! a `sequence` becomes a `config sequence`: `sequence = 7000,8000:udp` →
//! `list knock 'tcp:7000'`, `list knock 'udp:8000'` (tcp when no protocol is
//! given, as knockd does), `seq_timeout` → `timeout`. What the sequence does
//! is read from its firewall command (`%IP%` is the knocker): an iptables
//! `-A`/`-I` or nft `add`/`insert` rule with `--dport N` / `dport N` opens
//! that port, `-D`/`delete` closes it. `start_command` + `cmd_timeout` (+
//! `stop_command`) opens for `cmd_timeout` seconds (postern's kernel timeout
//! does the stop); a lone `command` that opens gets postern's grant of 30 s
//! for new connections (established ones stay), with a warning. Sections
//! whose command is not a port rule (scripts), or with `one_time_sequences`,
//! are left out with a warning; other keys without an equivalent are warned
//! about and ignored.

use super::uci_out::UciOut;
use super::{section_name, Converted, Warnings};

/// One `[section]` with its `key = value` lines (keys lowercased).
struct Section {
    name: String,
    line: usize,
    vars: Vec<(String, String, usize)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<(&str, usize)> {
        self.vars
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, l)| (v.as_str(), *l))
    }
}

/// A firewall command understood: open or close one port.
#[derive(Debug, PartialEq, Eq)]
struct Rule {
    open: bool,
    port: String,
}

/// Converts `knockd.conf` text (`file` names it in warnings).
pub fn knockd(file: &str, text: &str) -> Result<Converted, String> {
    let sections = read(text)?;
    let mut w = Warnings::new(file);
    let mut out = UciOut::default();
    out.comment(&format!(
        "Converted by 'postern import knockd' from {file}."
    ));
    out.section("postern", "main");
    if let Some(opts) = sections
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case("options"))
    {
        for (k, v, line) in &opts.vars {
            match k.as_str() {
                "interface" => out.list("device", [v.as_str()]),
                other => w.push(
                    *line,
                    format!("option {other} has no postern equivalent: ignored"),
                ),
            }
        }
    }
    let mut count = 0;
    for s in sections
        .iter()
        .filter(|s| !s.name.eq_ignore_ascii_case("options"))
    {
        count += 1;
        sequence(&mut w, s, count, &mut out);
    }
    Ok(Converted {
        uci: out.finish(),
        warnings: w.list,
    })
}

fn read(text: &str) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_string(),
                line,
                vars: Vec::new(),
            });
            continue;
        }
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        let s = sections
            .last_mut()
            .ok_or_else(|| format!("line {line}: '{l}' before the first [section]"))?;
        s.vars
            .push((k.trim().to_ascii_lowercase(), v.trim().to_string(), line));
    }
    Ok(sections)
}

fn sequence(w: &mut Warnings, s: &Section, index: usize, out: &mut UciOut) {
    let left_out = |w: &mut Warnings, why: String| {
        w.push(s.line, format!("[{}] left out: {why}", s.name));
    };
    if s.get("one_time_sequences").is_some() {
        return left_out(w, "one_time_sequences has no postern equivalent".into());
    }
    let Some((seq, seq_line)) = s.get("sequence") else {
        return left_out(w, "no sequence".into());
    };
    let mut knocks = Vec::new();
    for step in seq.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (port, proto) = step.split_once(':').unwrap_or((step, "tcp"));
        let proto = proto.trim().to_ascii_lowercase();
        match crate::port::parse_port(port.trim()) {
            Some(p) if proto == "tcp" || proto == "udp" => knocks.push(format!("{proto}:{p}")),
            _ => {
                return left_out(
                    w,
                    format!("sequence step '{step}' (line {seq_line}) is not PORT[:tcp|udp]"),
                )
            }
        }
    }
    let (rule, duration) = if let Some((cmd, line)) = s.get("start_command") {
        let Some(rule) = rule(cmd) else {
            return left_out(
                w,
                format!("start_command (line {line}) is not a firewall rule for one port"),
            );
        };
        let t = s
            .get("cmd_timeout")
            .and_then(|(v, _)| v.parse::<u64>().ok());
        (rule, t.filter(|t| (1..=86_400).contains(t)))
    } else if let Some((cmd, line)) = s.get("command") {
        let Some(rule) = rule(cmd) else {
            return left_out(
                w,
                format!("command (line {line}) is not a firewall rule for one port"),
            );
        };
        if rule.open {
            w.push(
                line,
                format!(
                    "[{}]: knockd kept the port open until a close sequence; postern lets new \
                     connections in for 'option duration' (30 s here) and keeps established ones",
                    s.name
                ),
            );
        }
        (rule, None)
    } else {
        return left_out(w, "no command".into());
    };

    let name = section_name(&s.name, &format!("knockd_{index}"));
    out.section("sequence", &name);
    out.list("knock", knocks.iter().map(String::as_str));
    if let Some((v, line)) = s.get("seq_timeout") {
        match v.parse::<u64>() {
            Ok(t) if (1..=3600).contains(&t) => out.option("timeout", &t.to_string()),
            _ => w.push(
                line,
                format!("seq_timeout '{v}': not 1 to 3600 s, postern's default (10 s) used"),
            ),
        }
    }
    if rule.open {
        out.list("open", [rule.port.as_str()]);
        if let Some(d) = duration {
            out.option("duration", &d.to_string());
        }
    } else {
        out.option("action", "close");
        out.list("close", [rule.port.as_str()]);
    }
    let known = [
        "sequence",
        "seq_timeout",
        "command",
        "start_command",
        "stop_command",
        "cmd_timeout",
    ];
    for (k, v, line) in &s.vars {
        match k.as_str() {
            k if known.contains(&k) => {}
            "tcpflags" if v.eq_ignore_ascii_case("syn") => {}
            "tcpflags" => w.push(
                *line,
                format!("tcpflags '{v}': postern counts a TCP knock by its SYN only"),
            ),
            other => w.push(*line, format!("{other} has no postern equivalent: ignored")),
        }
    }
}

/// Reads an iptables or nft command that opens or closes one port for `%IP%`.
fn rule(cmd: &str) -> Option<Rule> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let exe = words.first()?.rsplit('/').next()?;
    if !cmd.contains("%IP%") {
        return None;
    }
    let open = if exe.starts_with("iptables") || exe.starts_with("ip6tables") {
        if words
            .iter()
            .any(|w| *w == "-A" || *w == "-I" || *w == "--append" || *w == "--insert")
        {
            true
        } else if words.iter().any(|w| *w == "-D" || *w == "--delete") {
            false
        } else {
            return None;
        }
    } else if exe == "nft" {
        match words.get(1).copied() {
            Some("add" | "insert") => true,
            Some("delete") => false,
            _ => return None,
        }
    } else {
        return None;
    };
    let after = |key: &str| words.windows(2).find(|p| p[0] == key).map(|p| p[1]);
    let (proto, port) = if let Some(p) = after("--dport") {
        (after("-p").or(after("--protocol")).unwrap_or("tcp"), p)
    } else if let Some(i) = words.windows(2).position(|p| p[1] == "dport") {
        (words[i], words.get(i + 2).copied()?)
    } else {
        return None;
    };
    let port = crate::port::parse_port(port)?;
    matches!(proto, "tcp" | "udp").then(|| Rule {
        open,
        port: format!("{proto}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_str, Action};
    use crate::port::PortSpec;
    use core::time::Duration;

    const KNOCKD: &str = include_str!("testdata/knockd.conf");

    #[test]
    fn knockd_conf_converts_to_a_valid_config() {
        let c = knockd("knockd.conf", KNOCKD).unwrap();
        let cfg = parse_str("converted", &c.uci).unwrap_or_else(|e| panic!("{e:?}\n{}", c.uci));
        assert_eq!(cfg.main.devices, ["eth1"]);
        let names: Vec<&str> = cfg.sequences.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["openSSH", "closeSSH", "openHTTPS", "openDNS"]);
        let s = &cfg.sequences[0];
        assert_eq!(
            s.knocks,
            [
                PortSpec::tcp(7000),
                PortSpec::tcp(8000),
                PortSpec::tcp(9000)
            ]
        );
        assert_eq!(
            (s.action, s.timeout),
            (Action::Open, Duration::from_secs(5))
        );
        assert_eq!(s.ports, [PortSpec::tcp(22)]);
        assert_eq!(s.duration, Duration::from_secs(30));
        let s = &cfg.sequences[1];
        assert_eq!(
            (s.action, s.ports.as_slice()),
            (Action::Close, &[PortSpec::tcp(22)][..])
        );
        let s = &cfg.sequences[2];
        assert_eq!(
            s.knocks,
            [
                PortSpec::udp(2222),
                PortSpec::tcp(3333),
                PortSpec::udp(4444)
            ]
        );
        assert_eq!(
            (s.ports.as_slice(), s.duration),
            (&[PortSpec::tcp(443)][..], Duration::from_secs(10))
        );
        assert_eq!(cfg.sequences[3].ports, [PortSpec::udp(53)]);

        let warned = |needle: &str| c.warnings.iter().any(|w| w.contains(needle));
        for needle in [
            "knockd.conf:3: option usesyslog has no postern equivalent",
            "knockd.conf:9: [openSSH]: knockd kept the port open until a close sequence",
            "knockd.conf:21: tcpflags 'syn,ack'",
            "knockd.conf:30: [oneTime] left out: one_time_sequences",
            "knockd.conf:35: [script] left out: command (line 37) is not a firewall rule",
        ] {
            assert!(warned(needle), "{needle} in {:#?}", c.warnings);
        }
        assert_eq!(c.warnings.len(), 6, "{:#?}", c.warnings);
    }

    #[test]
    fn commands() {
        let r = |c: &str| rule(c).map(|r| (r.open, r.port));
        assert_eq!(
            r("iptables -I INPUT -s %IP% -p udp --dport 53 -j ACCEPT"),
            Some((true, "udp:53".into()))
        );
        assert_eq!(
            r("/usr/sbin/ip6tables -D INPUT -s %IP% --dport 22 -j ACCEPT"),
            Some((false, "tcp:22".into()))
        );
        assert_eq!(
            r("nft delete rule inet f input ip saddr %IP% tcp dport 22 accept"),
            Some((false, "tcp:22".into()))
        );
        assert_eq!(
            r("iptables -A INPUT -p tcp --dport 22 -j ACCEPT"),
            None,
            "no %IP%"
        );
        assert_eq!(r("iptables -L %IP%"), None);
        assert_eq!(r("echo %IP%"), None);
        assert!(knockd("k", "sequence = 1\n").is_err());
        let c = knockd(
            "k",
            "[x]\nsequence = 1:icmp\ncommand = iptables -A I -s %IP% --dport 2\n",
        )
        .unwrap();
        assert!(c.warnings[0].contains("is not PORT[:tcp|udp]"));
        parse_str("c", &c.uci).unwrap();
    }
}
