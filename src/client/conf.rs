//! The client's config file: named stanzas so `postern spa --stanza home` is enough.
//!
//! Default path `$XDG_CONFIG_HOME/postern/client.conf`, else
//! `~/.config/postern/client.conf`. UCI syntax, read with postern's own
//! [`crate::config::uci`] parser; every error names `file:line`:
//!
//! ```text
//! config stanza 'home'
//!     option host 'router.example.org'   # name or address (required)
//!     option key 'base64…'               # or: option key_file '/path/to/key'
//!     list   access 'tcp/22'             # tcp/PORT or tcp:PORT (none: the router's default_access)
//!     option port '62201'                # the router's spa_port (default 62201)
//!     option duration '30'               # seconds (default 30)
//!     option address '198.51.100.7'      # ask for this address (like -a) instead of the source
//!     option resolve 'stun:stun.example.org'  # or learn it from a STUN server (like --resolve)
//! ```
//!
//! `config encoded` sections (the router's syntax) may sit beside the stanzas:
//! `postern knock --encode … --profile NAME` reads them.
//!
//! Only reading and validating; the key file is read here too (an edge: file I/O).

use core::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::uci::{self, Entry, Section, Value};
use crate::config::ConfigError;
use crate::port::PortSpec;
use crate::spa::Key;

/// The default SPA port of the router.
pub const DEFAULT_PORT: u16 = 62201;
/// The default requested duration, seconds.
pub const DEFAULT_DURATION: u32 = 30;
const OPTIONS: &[&str] = &[
    "host", "key", "key_file", "access", "port", "duration", "address", "resolve",
];

/// One `config stanza` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// The section name.
    pub name: String,
    /// `option host`.
    pub host: String,
    /// `option key` or the content of `option key_file`.
    pub key: Key,
    /// `list access`.
    pub access: Vec<PortSpec>,
    /// `option port` (default [`DEFAULT_PORT`]).
    pub port: u16,
    /// `option duration` (default [`DEFAULT_DURATION`]).
    pub duration: u32,
    /// `option address`: an explicit address to allow.
    pub address: Option<IpAddr>,
    /// `option resolve`: a STUN server (`stun:HOST[:PORT]`) that tells the
    /// address to seal in the packet (at most one of `address` and `resolve`).
    pub resolve: Option<String>,
}

/// The default client config path.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("postern").join("client.conf"))
}

/// Reads a key file: base64 text, surrounding whitespace ignored. Warns on
/// stderr when group or others may read or write it
/// ([`key_file_permission_warning`]); the key is used all the same.
pub fn read_key_file(path: &Path) -> Result<Key, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if let Some(w) = key_file_permission_warning(&path.display().to_string(), mode) {
            eprintln!("warning: {w}");
        }
    }
    Key::from_base64(text.trim()).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// The warning for a key file of mode `mode` (as `stat` gives it) that group
/// or others may read or write, like the router config's
/// ([`crate::config::permission_warning`]); `None` for a private file.
pub fn key_file_permission_warning(path: &str, mode: u32) -> Option<String> {
    if mode & 0o077 == 0 {
        return None;
    }
    Some(format!(
        "key file {path} is readable or writable by group or others (mode {:04o}): run 'chmod 600 {path}'",
        mode & 0o7777
    ))
}

/// Reads and validates the whole file.
pub fn load(path: &Path) -> Result<Vec<Stanza>, Vec<ConfigError>> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    let sections = uci::parse_bytes(&file, &bytes)?;
    from_sections(&file, &sections, path.parent())
}

/// Validates parsed sections; relative `key_file` paths are taken from `dir`.
pub fn from_sections(
    file: &str,
    sections: &[Section],
    dir: Option<&Path>,
) -> Result<Vec<Stanza>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut push = |line: usize, message: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            line,
            message,
        })
    };
    for s in sections {
        if s.kind == "encoded" {
            continue; // read by `postern knock --profile` (see client::modes)
        }
        if s.kind != "stanza" {
            push(
                s.line,
                format!("unknown section type '{}' (expected: stanza)", s.kind),
            );
            continue;
        }
        let Some(name) = s.name.clone() else {
            push(s.line, "a stanza needs a name: config stanza 'home'".into());
            continue;
        };
        match stanza(s, name, dir) {
            Ok(st) => out.push(st),
            Err(errs) => {
                for (line, msg) in errs {
                    push(line, msg);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// The stanza called `name`, or a message listing the ones there are.
pub fn find<'a>(stanzas: &'a [Stanza], name: &str, file: &Path) -> Result<&'a Stanza, String> {
    stanzas.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = stanzas.iter().map(|s| s.name.as_str()).collect();
        format!(
            "{}: no stanza '{name}' (stanzas: {})",
            file.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

/// The value, or the error recorded.
fn take<T>(errs: &mut Vec<(usize, String)>, r: Result<T, (usize, String)>) -> Option<T> {
    r.map_err(|e| errs.push(e)).ok()
}

fn single(e: &Entry) -> Result<&str, (usize, String)> {
    match &e.value {
        Value::Single(v) if !v.is_empty() => Ok(v),
        Value::Single(_) => Err((e.line, format!("option '{}' is empty", e.name))),
        Value::List(_) => Err((e.line, format!("'{}' takes one value: use option", e.name))),
    }
}

fn stanza(s: &Section, name: String, dir: Option<&Path>) -> Result<Stanza, Vec<(usize, String)>> {
    let mut errs = Vec::new();
    for e in s
        .options
        .iter()
        .filter(|e| !OPTIONS.contains(&e.name.as_str()))
    {
        errs.push((
            e.line,
            format!(
                "unknown option '{}' in stanza '{name}' (known: {})",
                e.name,
                OPTIONS.join(", ")
            ),
        ));
    }
    let host = match s.get("host") {
        Some(e) => take(&mut errs, single(e).map(str::to_string)),
        None => take(
            &mut errs,
            Err((s.line, format!("stanza '{name}' has no host"))),
        ),
    };
    let key = match (s.get("key"), s.get("key_file")) {
        (Some(e), None) => take(
            &mut errs,
            single(e).and_then(|v| {
                Key::from_base64(v).map_err(|err| (e.line, format!("key is not valid: {err}")))
            }),
        ),
        (None, Some(e)) => take(
            &mut errs,
            single(e).and_then(|v| {
                let p = match dir {
                    Some(d) if !v.starts_with('/') => d.join(v),
                    _ => PathBuf::from(v),
                };
                read_key_file(&p).map_err(|m| (e.line, m))
            }),
        ),
        (Some(_), Some(e)) => take(
            &mut errs,
            Err((e.line, "give key or key_file, not both".into())),
        ),
        (None, None) => take(
            &mut errs,
            Err((
                s.line,
                format!("stanza '{name}' has no key (option key or option key_file)"),
            )),
        ),
    };
    let access = match s.get("access") {
        Some(e) => {
            let items: Vec<&str> = match &e.value {
                Value::Single(v) => vec![v.as_str()],
                Value::List(v) => v.iter().map(String::as_str).collect(),
            };
            take(
                &mut errs,
                super::spa::parse_access(&items.join(",")).map_err(|m| (e.line, m)),
            )
        }
        // No access: the router's choice (the client's default_access).
        None => Some(Vec::new()),
    };
    let port = match s.get("port") {
        Some(e) => take(
            &mut errs,
            single(e).and_then(|v| {
                crate::port::parse_port(v)
                    .ok_or_else(|| (e.line, format!("port '{v}' is not a port number (1-65535)")))
            }),
        ),
        None => Some(DEFAULT_PORT),
    };
    let duration = match s.get("duration") {
        Some(e) => take(
            &mut errs,
            single(e).and_then(|v| match v.parse::<u32>() {
                Ok(d) if d > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(d),
                _ => Err((e.line, format!("duration '{v}' is not a number of seconds"))),
            }),
        ),
        None => Some(DEFAULT_DURATION),
    };
    let address = match s.get("address") {
        Some(e) => take(
            &mut errs,
            single(e).and_then(|v| {
                v.parse::<IpAddr>()
                    .map(Some)
                    .map_err(|_| (e.line, format!("address '{v}' is not an IP address")))
            }),
        ),
        None => Some(None),
    };
    let resolve = match s.get("resolve") {
        Some(e) => take(
            &mut errs,
            single(e).and_then(|v| {
                crate::client::stun::parse_server(v)
                    .map(|_| Some(v.to_string()))
                    .map_err(|m| (e.line, format!("resolve {m}")))
            }),
        ),
        None => Some(None),
    };
    if let (Some(Some(_)), Some(e)) = (&address, s.get("resolve")) {
        errs.push((
            e.line,
            "give option address or option resolve, not both".to_string(),
        ));
    }
    match (host, key, access, port, duration, address, resolve) {
        (
            Some(host),
            Some(key),
            Some(access),
            Some(port),
            Some(duration),
            Some(address),
            Some(resolve),
        ) if errs.is_empty() => Ok(Stanza {
            name,
            host,
            key,
            access,
            port,
            duration,
            address,
            resolve,
        }),
        _ => Err(errs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    #[test]
    fn key_files_open_to_group_or_others_are_warned_about() {
        assert_eq!(key_file_permission_warning("k", 0o100600), None);
        assert_eq!(key_file_permission_warning("k", 0o100400), None);
        assert_eq!(key_file_permission_warning("k", 0o040700), None);
        assert_eq!(
            key_file_permission_warning("/home/u/home.key", 0o100644).unwrap(),
            "key file /home/u/home.key is readable or writable by group or others (mode 0644): \
             run 'chmod 600 /home/u/home.key'"
        );
        for mode in [0o100640, 0o100604, 0o100620, 0o100602, 0o100610, 0o100601] {
            assert!(key_file_permission_warning("k", mode).is_some(), "{mode:o}");
        }
    }

    fn parse(text: &str) -> Result<Vec<Stanza>, Vec<(usize, String)>> {
        let sections = uci::parse("c", text).map_err(|e| {
            e.into_iter()
                .map(|e| (e.line, e.message))
                .collect::<Vec<_>>()
        })?;
        from_sections("c", &sections, None)
            .map_err(|e| e.into_iter().map(|e| (e.line, e.message)).collect())
    }

    #[test]
    fn reads_stanzas() {
        let text = format!(
            "config stanza 'home'\n\toption host 'router.lan'\n\toption key '{KEY}'\n\tlist access 'tcp/22'\n\tlist access 'udp:53'\n\n\
             config stanza 'work'\n\toption host '192.0.2.1'\n\toption key '{KEY}'\n\toption access 'tcp/443'\n\toption port 4000\n\toption duration 5\n\toption address '198.51.100.7'\n"
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "home");
        assert_eq!(s[0].host, "router.lan");
        assert_eq!(s[0].key, Key::from_bytes([7; 32]));
        assert_eq!(s[0].access, [PortSpec::tcp(22), PortSpec::udp(53)]);
        assert_eq!((s[0].port, s[0].duration, s[0].address), (62201, 30, None));
        assert_eq!((s[1].port, s[1].duration), (4000, 5));
        assert_eq!(s[1].address, Some("198.51.100.7".parse().unwrap()));
        assert!(find(&s, "work", Path::new("c")).is_ok());
        assert_eq!(
            find(&s, "play", Path::new("c")).unwrap_err(),
            "c: no stanza 'play' (stanzas: home, work)"
        );
    }

    #[test]
    fn resolve_is_a_stun_server() {
        let base = format!(
            "config stanza 'x'\n\toption host 'r'\n\toption key '{KEY}'\n\tlist access 'tcp/22'\n"
        );
        let s = parse(&format!("{base}\toption resolve 'stun:192.0.2.9:3478'\n")).unwrap();
        assert_eq!(s[0].resolve.as_deref(), Some("stun:192.0.2.9:3478"));
        assert_eq!(s[0].address, None);
        assert_eq!(
            parse(&format!("{base}\toption resolve '192.0.2.9'\n")).unwrap_err(),
            [(5, "resolve '192.0.2.9' is not stun:HOST[:PORT]".to_string())]
        );
        assert_eq!(
            parse(&format!(
                "{base}\toption address '192.0.2.7'\n\toption resolve 'stun:s'\n"
            ))
            .unwrap_err(),
            [(
                6,
                "give option address or option resolve, not both".to_string()
            )]
        );
    }

    #[test]
    fn errors_name_their_lines() {
        let text = "config stanza 'x'\n\toption key 'abc'\n\tlist access 'tcp/0'\n\toption colour red\nconfig other\n";
        let e = parse(text).unwrap_err();
        let lines: Vec<usize> = e.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5], "{e:?}");
        assert!(e[0].1.contains("has no host"));
        assert!(e[1].1.starts_with("key is not valid"));
    }

    #[test]
    fn key_file_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("postern-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("home.key"), format!("{KEY}\n")).unwrap();
        let conf = dir.join("client.conf");
        std::fs::write(
            &conf,
            "config stanza 'home'\n\toption host h\n\toption key_file 'home.key'\n\tlist access tcp/22\n",
        )
        .unwrap();
        let s = load(&conf).unwrap();
        assert_eq!(s[0].key, Key::from_bytes([7; 32]));
        std::fs::write(dir.join("home.key"), "short").unwrap();
        let e = load(&conf).unwrap_err();
        assert_eq!(e[0].line, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
