//! `postern`: the command line. Each subcommand is a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "desktop")]
use std::time::Duration;

use postern::cli::{self, usage};
#[cfg(feature = "desktop")]
use postern::client::conf::{self as client_conf, Stanza};
#[cfg(feature = "desktop")]
use postern::client::spa as spa_client;
#[cfg(feature = "desktop")]
use postern::client::stun;
use postern::config::{self, BackendKind};
#[cfg(feature = "desktop")]
use postern::port::PortSpec;
use postern::spa::Key;
#[cfg(feature = "desktop")]
use postern::spa::{Kind, Target};
#[cfg(feature = "desktop")]
use postern::{client, demo};
use postern::{control, daemon, logger};

const DEFAULT_CONFIG: &str = "/etc/config/postern";

fn main() -> ExitCode {
    postern::crash::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    logger::init(log::LevelFilter::Info);
    let Some((name, rest)) = args.split_first() else {
        eprint!("{}", usage::overview(cfg!(feature = "desktop")));
        return ExitCode::from(2);
    };
    if name != "daemon" {
        quiet_on_broken_pipe();
    }
    match name.as_str() {
        "--help" | "-h" => return cmd_help(rest),
        "--version" | "-V" => return cmd_version(),
        _ => {}
    }
    let Some(cmd) = usage::find(name) else {
        return usage_error(None, &cli::unknown_command(name));
    };
    if !usage::in_this_build(cmd) {
        return usage_error(
            None,
            &format!("'{name}' is in the desktop build only; this is a router build"),
        );
    }
    match cli::scan(cmd, rest) {
        Ok(cli::Scan::Help) => {
            print!("{}", usage::of(cmd));
            return ExitCode::SUCCESS;
        }
        Ok(cli::Scan::Version) => return cmd_version(),
        Ok(cli::Scan::Run) => {}
        Err(msg) => return usage_error(Some(name), &msg),
    }
    let result = match cmd.name {
        "help" => return cmd_help(rest),
        "version" if rest.is_empty() => return cmd_version(),
        "version" => Err(format!("version: unexpected argument '{}'", rest[0])),
        "daemon" => cmd_daemon(rest),
        "check" => cmd_check(rest),
        "status" => cmd_status(rest),
        "revoke" | "unban" | "peer-sync" => cmd_control(name, rest),
        "schema" => cmd_schema(rest),
        "fw3-forwards" => cmd_fw3_forwards(rest),
        "keygen" => cmd_keygen(rest),
        #[cfg(feature = "desktop")]
        "knock" => cmd_knock(rest),
        #[cfg(feature = "desktop")]
        "spa" => cmd_spa(rest),
        #[cfg(feature = "desktop")]
        "ssh-proxy" => postern::client::ssh_proxy::cmd(rest),
        #[cfg(feature = "desktop")]
        "demo" => cmd_demo(rest),
        #[cfg(feature = "desktop")]
        "import" => cmd_import(rest),
        other => unreachable!("'{other}' is in the usage table but has no command"),
    };
    match result {
        Ok(code) => code,
        Err(msg) => usage_error(Some(name), &msg),
    }
}

/// A usage error: the message, where to read the usage, exit 2.
fn usage_error(command: Option<&str>, msg: &str) -> ExitCode {
    eprintln!("postern: {msg}");
    match command {
        Some(c) => eprintln!("run 'postern help {c}' for usage"),
        None => eprintln!("run 'postern help' for usage"),
    }
    ExitCode::from(2)
}

/// A command that ran and failed: the message, exit 1.
fn failed(msg: &str) -> ExitCode {
    eprintln!("postern: {msg}");
    ExitCode::FAILURE
}

/// `postern help [SUBCOMMAND]`.
fn cmd_help(args: &[String]) -> ExitCode {
    match args {
        [] => print!("{}", usage::overview(cfg!(feature = "desktop"))),
        [name] => match usage::find(name) {
            Some(cmd) => print!("{}", usage::of(cmd)),
            None => return usage_error(None, &cli::unknown_command(name)),
        },
        _ => return usage_error(Some("help"), "help: give one SUBCOMMAND"),
    }
    ExitCode::SUCCESS
}

/// `postern version`, `--version`, `-V`.
fn cmd_version() -> ExitCode {
    println!("postern {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}

/// Lets a closed pipe end a command quietly, as it ends `yes | head -1`:
/// SIGPIPE back to its default action (the Rust runtime ignores it, so that
/// a write fails with EPIPE, and `print!` then panics: `postern keygen |
/// head -1` aborted). Not for the daemon, which must outlive any client of
/// its control socket; `postern status` writes its request with
/// `MSG_NOSIGNAL`, so a daemon that goes away is still reported.
fn quiet_on_broken_pipe() {
    // SAFETY: sets the disposition of one signal to its default, before any
    // thread is started; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(feature = "desktop")]
/// `postern import fwknopd|knockd FILE...`: converted config on stdout, warnings on stderr.
fn cmd_import(args: &[String]) -> Result<ExitCode, String> {
    let read = |p: &String| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let converted = match args {
        [kind, access] if kind == "fwknopd" => postern::import::fwknopd((access, &read(access)?), None),
        [kind, access, conf] if kind == "fwknopd" => {
            postern::import::fwknopd((access, &read(access)?), Some((conf, &read(conf)?)))
        }
        [kind, file] if kind == "knockd" => postern::import::knockd(file, &read(file)?),
        _ => return Err("usage: postern import fwknopd ACCESS_CONF [FWKNOPD_CONF] | postern import knockd KNOCKD_CONF".into()),
    }?;
    for w in &converted.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", converted.uci);
    Ok(ExitCode::SUCCESS)
}

/// Takes the value after a flag, or says which flag lacks one.
fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    Ok(match s {
        "auto" => BackendKind::Auto,
        "fw4" => BackendKind::Fw4,
        "fw3" => BackendKind::Fw3,
        "nft" => BackendKind::Nft,
        "dry-run" => BackendKind::DryRun,
        _ => return Err(format!("unknown backend '{s}' (auto, fw4, nft, dry-run)")),
    })
}

fn cmd_daemon(args: &[String]) -> Result<ExitCode, String> {
    let mut opts = daemon::Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        ..Default::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => opts.config = PathBuf::from(value(&mut it, a)?),
            "-i" | "--interface" => opts.devices.push(value(&mut it, a)?.clone()),
            "--control" => opts.control = Some(PathBuf::from(value(&mut it, a)?)),
            "--backend" => opts.backend = Some(parse_backend(value(&mut it, a)?)?),
            "--log-level" => {
                let v = value(&mut it, a)?;
                opts.log_level =
                    Some(logger::parse_level(v).ok_or_else(|| format!("unknown log level '{v}'"))?);
            }
            other => return Err(format!("daemon: unexpected argument '{other}'")),
        }
    }
    if let Some(level) = opts.log_level {
        log::set_max_level(level);
    }
    match daemon::run(&opts) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            log::error!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn cmd_status(args: &[String]) -> Result<ExitCode, String> {
    let mut request = control::Request::Text;
    let mut socket = PathBuf::from(control::DEFAULT_SOCKET);
    let mut watch = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => request = control::Request::Json,
            "--watch" | "-w" => watch = true,
            "-s" | "--socket" => socket = PathBuf::from(value(&mut it, a)?),
            other => return Err(format!("status: unexpected argument '{other}'")),
        }
    }
    let json = matches!(request, control::Request::Json);
    let include_error = postern::status::include_error_at(std::path::Path::new(
        postern::status::INCLUDE_ERROR_FILE,
    ));
    let show = |answer: &str| match &include_error {
        Some(e) => postern::status::with_include_error(answer, e, json),
        None => answer.to_string(),
    };
    if watch {
        if json {
            return Err("status: --watch redraws the text view; drop --json".into());
        }
        let every = std::time::Duration::from_secs(1);
        postern::status_view::watch(&socket, every, show).map_err(|e| format!("status: {e}"))?;
    }
    match control::query(&socket, request) {
        Ok(answer) => {
            print!("{}", show(&answer));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if include_error.is_some() && json {
                // One JSON object for LuCI: the include failure and why
                // there is no daemon status (success: the object is valid).
                let down = format!(
                    "{{\"error\":{}}}\n",
                    postern::status::quote(&format!("postern is not running: {e}"))
                );
                print!("{}", show(&down));
                return Ok(ExitCode::SUCCESS);
            }
            if include_error.is_some() {
                print!("{}", show(""));
            }
            eprintln!("postern: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `postern revoke ADDR PROTO:PORT` and `postern unban NET`: one request to
/// the running daemon; its `ok:`/`error:` answer printed, `error:` exits 1.
fn cmd_control(cmd: &str, args: &[String]) -> Result<ExitCode, String> {
    let mut socket = PathBuf::from(control::DEFAULT_SOCKET);
    let mut words = vec![cmd.to_string()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" | "--socket" => socket = PathBuf::from(value(&mut it, a)?),
            other => words.push(other.to_string()),
        }
    }
    let request = control::Request::parse(&words.join(" "))?;
    match control::query(&socket, request) {
        Ok(answer) => {
            print!("{answer}");
            Ok(if answer.starts_with("ok:") {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            eprintln!("postern: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn cmd_schema(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("--json") | None => {}
        Some(other) => return Err(format!("schema: unexpected argument '{other}'")),
    }
    let sections: Vec<String> = config::typed::schema()
        .iter()
        .map(|(kind, options)| {
            let names: Vec<String> = options.iter().map(|o| postern::status::quote(o)).collect();
            format!("{}:[{}]", postern::status::quote(kind), names.join(","))
        })
        .collect();
    println!("{{{}}}", sections.join(","));
    Ok(ExitCode::SUCCESS)
}

fn cmd_check(args: &[String]) -> Result<ExitCode, String> {
    let json = args.iter().any(|a| a == "--json");
    let rest: Vec<String> = args.iter().filter(|a| *a != "--json").cloned().collect();
    let path = config_arg("check", &rest)?;
    let loaded = config::load(&path).and_then(|cfg| {
        // Users of commands are looked up as the daemon does.
        postern::daemon::command_specs(&path.display().to_string(), &cfg).map(|_| cfg)
    });
    if json {
        let (ok, errors, warnings) = match &loaded {
            Ok(cfg) => (true, Vec::new(), config::typed::warnings(cfg)),
            Err(errs) => (false, errs.clone(), Vec::new()),
        };
        println!("{}", check_json(ok, &errors, &warnings));
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Ok(match loaded_or_errors(&path, loaded) {
        Some(cfg) => {
            println!("{}: ok", path.display());
            print!("{}", config::typed::summary(&cfg));
            for w in config::typed::warnings(&cfg) {
                eprintln!("warning: {}: {w}", path.display());
            }
            let fw4 = match cfg.main.backend {
                BackendKind::Fw4 => true,
                BackendKind::Auto => ["/sbin/fw4", "/usr/sbin/fw4"]
                    .iter()
                    .any(|p| std::path::Path::new(p).exists()),
                _ => false,
            };
            if fw4 {
                let report = postern::firewall::fw4_zones::report_at(
                    std::path::Path::new("/"),
                    &cfg.main.interfaces,
                    &cfg.main.devices,
                );
                for w in report.warnings {
                    eprintln!("warning: {w}");
                }
            }
            if let Some(e) = postern::status::include_error_at(std::path::Path::new(
                postern::status::INCLUDE_ERROR_FILE,
            )) {
                eprintln!("warning: firewall include FAILED (moved aside): {e}");
            }
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    })
}

/// `postern check --json`: `{"ok":…,"errors":[{"line":N,"message":"…"}],"warnings":["…"]}`
/// (read by the LuCI page, which maps each line to the section it rendered there).
fn check_json(ok: bool, errors: &[config::ConfigError], warnings: &[String]) -> String {
    use postern::status::quote;
    let errors: Vec<String> = errors
        .iter()
        .map(|e| format!("{{\"line\":{},\"message\":{}}}", e.line, quote(&e.message)))
        .collect();
    let warnings: Vec<String> = warnings.iter().map(|w| quote(w)).collect();
    format!(
        "{{\"ok\":{ok},\"errors\":[{}],\"warnings\":[{}]}}",
        errors.join(","),
        warnings.join(",")
    )
}

/// `postern fw3-forwards [-c FILE]`: the iptables DNAT rules of the enabled
/// forwards, as a script for the fw3 include (`... | sh`).
fn cmd_fw3_forwards(args: &[String]) -> Result<ExitCode, String> {
    let path = config_arg("fw3-forwards", args)?;
    Ok(match loaded_or_errors(&path, config::load(&path)) {
        Some(cfg) => {
            let specs = postern::daemon::forward_specs(&cfg);
            print!(
                "{}",
                postern::firewall::ipset::fw3_forwards::forward_rules_script(&specs)
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    })
}

/// The `[-c FILE]` of `check` and `fw3-forwards` (default [`DEFAULT_CONFIG`]).
fn config_arg(command: &str, args: &[String]) -> Result<PathBuf, String> {
    let mut path = PathBuf::from(DEFAULT_CONFIG);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => path = PathBuf::from(value(&mut it, a)?),
            other => return Err(format!("{command}: unexpected argument '{other}'")),
        }
    }
    Ok(path)
}

/// The config, or `None` after printing every error and their count to stderr.
fn loaded_or_errors(
    path: &std::path::Path,
    loaded: Result<config::Config, Vec<config::ConfigError>>,
) -> Option<config::Config> {
    match loaded {
        Ok(cfg) => Some(cfg),
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errs.len());
            None
        }
    }
}

#[cfg(feature = "desktop")]
fn cmd_knock(args: &[String]) -> Result<ExitCode, String> {
    if let Some(req) = client::modes::parse(args)? {
        println!("{}", client::modes::run(&req)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut delay = Duration::ZERO;
    let mut verbose = false;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-v" | "--verbose" => verbose = true,
            "-d" | "--delay" => {
                let v = value(&mut it, a)?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--delay '{v}' is not a number of milliseconds"))?;
                delay = Duration::from_millis(ms);
            }
            _ => positional.push(a),
        }
    }
    let Some((host, knocks)) = positional.split_first() else {
        return Err("knock: usage: postern knock [--delay MS] HOST PROTO:PORT...".into());
    };
    if knocks.is_empty() {
        return Err("knock: give at least one PROTO:PORT, e.g. tcp:7000".into());
    }
    let knocks = knocks
        .iter()
        .map(|k| {
            k.parse::<PortSpec>()
                .map_err(|e| format!("knock '{k}': {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let addr = match client::resolve(host) {
        Ok(addr) => addr,
        Err(e) => return Ok(failed(&format!("knock: {e}"))),
    };
    if verbose {
        print!("{}", client::describe_knocks(host, addr, &knocks, delay));
    }
    Ok(match client::knock(addr, &knocks, delay) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&format!("knock: {e}")),
    })
}

#[cfg(feature = "desktop")]
fn cmd_spa(args: &[String]) -> Result<ExitCode, String> {
    let mut host: Option<String> = None;
    let mut access: Option<Vec<PortSpec>> = None;
    let mut target: Option<Target> = None;
    let mut resolve: Option<String> = None;
    let mut repeat: u32 = 1;
    let mut duration: Option<u32> = None;
    let mut close = false;
    let mut named: Option<(Kind, String)> = None;
    let mut key: Option<Key> = None;
    let mut stanza_name: Option<String> = None;
    let mut conf_path: Option<PathBuf> = None;
    let mut port: Option<u16> = None;
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-v" | "--verbose" => verbose = true,
            "-A" | "--access" => access = Some(spa_client::parse_access(value(&mut it, a)?)?),
            "-s" | "--source" => target = Some(Target::Source),
            "-a" | "--allow-ip" => {
                let v = value(&mut it, a)?;
                let ip = v
                    .parse()
                    .map_err(|_| format!("-a '{v}' is not an IP address"))?;
                target = Some(Target::Addr(ip));
            }
            "--resolve" => {
                let v = value(&mut it, a)?;
                stun::parse_server(v).map_err(|e| format!("--resolve {e}"))?;
                resolve = Some(v.clone());
            }
            "--repeat" => {
                let v = value(&mut it, a)?;
                repeat = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=spa_client::MAX_REPEAT).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--repeat '{v}' is not a number from 1 to {}",
                            spa_client::MAX_REPEAT
                        )
                    })?;
            }
            "--duration" | "-d" => {
                let v = value(&mut it, a)?;
                duration = Some(
                    v.parse()
                        .ok()
                        .filter(|&d| d > 0)
                        .ok_or_else(|| format!("--duration '{v}' is not a number of seconds"))?,
                );
            }
            "--close" => close = true,
            "--command" | "--forward" => {
                let v = value(&mut it, a)?;
                if !config::typed::is_action_name(v) {
                    return Err(format!(
                        "{a} '{v}' is not a name of the router's config (1-32 letters, digits or _)"
                    ));
                }
                let kind = if a == "--command" {
                    Kind::Command
                } else {
                    Kind::Forward
                };
                if named.replace((kind, v.clone())).is_some() {
                    return Err("spa: give one --command or --forward".into());
                }
            }
            "--key" => {
                let v = value(&mut it, a)?;
                key = Some(Key::from_base64(v).map_err(|e| format!("--key: {e}"))?);
            }
            "--key-file" => {
                key = Some(client_conf::read_key_file(std::path::Path::new(value(
                    &mut it, a,
                )?))?)
            }
            "--stanza" | "-n" => stanza_name = Some(value(&mut it, a)?.clone()),
            "-c" | "--config" => conf_path = Some(PathBuf::from(value(&mut it, a)?)),
            "-p" | "--port" => {
                let v = value(&mut it, a)?;
                port = Some(
                    postern::port::parse_port(v)
                        .ok_or_else(|| format!("--port '{v}' is not a port number"))?,
                );
            }
            other if other.starts_with('-') => {
                return Err(format!("spa: unknown option '{other}'"))
            }
            other if host.is_none() => host = Some(other.to_string()),
            other => return Err(format!("spa: unexpected argument '{other}'")),
        }
    }
    let stanza: Option<Stanza> = match &stanza_name {
        None => None,
        Some(name) => {
            let path = conf_path
                .clone()
                .or_else(client_conf::default_path)
                .ok_or("spa: no client config path: give -c FILE")?;
            let stanzas = match client_conf::load(&path) {
                Ok(s) => s,
                Err(errs) => {
                    for e in &errs {
                        eprintln!("{e}");
                    }
                    return Err(format!("{}: {} error(s)", path.display(), errs.len()));
                }
            };
            Some(client_conf::find(&stanzas, name, &path)?.clone())
        }
    };
    let host = host
        .or_else(|| stanza.as_ref().map(|s| s.host.clone()))
        .ok_or("spa: give HOST (or --stanza NAME)")?;
    let key = key
        .or_else(|| stanza.as_ref().map(|s| s.key.clone()))
        .ok_or("spa: give a key: --key-file F, --key B64 or --stanza NAME")?;
    if named.is_some() && (close || access.is_some()) {
        return Err("spa: --command and --forward take no -A or --close".into());
    }
    let ports = match &named {
        Some(_) => Vec::new(),
        None => access
            .or_else(|| stanza.as_ref().map(|s| s.access.clone()))
            // No ports (no -A, -A none, a stanza without access): the
            // router's choice, the client's default_access.
            .unwrap_or_default(),
    };
    if target.is_some() && resolve.is_some() {
        return Err("spa: give one of -s, -a and --resolve".into());
    }
    // Flags override the stanza's address or resolve.
    let resolve = match (&target, resolve) {
        (None, None) => stanza.as_ref().and_then(|s| s.resolve.clone()),
        (_, r) => r,
    };
    let target = target
        .or_else(|| {
            stanza
                .as_ref()
                .filter(|_| resolve.is_none())
                .and_then(|s| s.address.map(Target::Addr))
        })
        .unwrap_or(Target::Source);
    let duration = duration
        .or_else(|| stanza.as_ref().map(|s| s.duration))
        .unwrap_or(client_conf::DEFAULT_DURATION);
    let port = port
        .or_else(|| stanza.as_ref().map(|s| s.port))
        .unwrap_or(client_conf::DEFAULT_PORT);
    let (kind, name) = match named {
        Some((kind, name)) => (kind, name),
        None if close => (Kind::Close, String::new()),
        None => (Kind::Open, String::new()),
    };
    if kind == Kind::Command && (target != Target::Source || resolve.is_some()) {
        return Err(
            "spa: a command runs for the packet's source only: drop -a or --resolve".into(),
        );
    }
    let addr = match client::resolve(&host) {
        Ok(addr) => addr,
        Err(e) => return Ok(failed(&format!("spa: host '{host}': {e}"))),
    };
    let target = match &resolve {
        Some(uri) => {
            let mapped = match stun::query(uri, addr) {
                Ok(mapped) => mapped,
                Err(e) => return Ok(failed(&format!("spa: --resolve: {e}"))),
            };
            println!("{uri} sees this machine as {mapped}");
            Target::Addr(mapped)
        }
        None => target,
    };
    let req = spa_client::Request {
        kind,
        target,
        ports,
        name,
        duration,
    };
    let sent = match spa_client::send(addr, port, &key, &req, repeat) {
        Ok(sent) => sent,
        Err(e) => return Ok(failed(&format!("spa: {e}"))),
    };
    let copies = if repeat > 1 {
        format!(" ({repeat} copies)")
    } else {
        String::new()
    };
    println!(
        "sent SPA request ({}) to {addr} udp:{port}, {} bytes{copies}",
        spa_client::describe(&req),
        sent.len()
    );
    if verbose {
        let key_from = match (&stanza_name, &stanza) {
            (Some(n), Some(_)) => format!("stanza '{n}'"),
            _ => "the command line".to_string(),
        };
        print!(
            "{}",
            spa_client::report(&req, &host, addr, port, sent.len(), &key_from)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_keygen(args: &[String]) -> Result<ExitCode, String> {
    let require_address = args.iter().any(|a| a == "--require-address");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--require-address").collect();
    let name = match rest[..] {
        [] => "laptop",
        [n] if config::uci::is_name(n) => n.as_str(),
        [n] => {
            return Err(format!(
                "keygen: '{n}' is not a valid name (letters, digits and _)"
            ))
        }
        _ => return Err("keygen: usage: postern keygen [--require-address] [NAME]".into()),
    };
    let (router_extra, client_extra) = if require_address {
        (
            "\toption require_address '1'   # packets must name their address (--resolve or -a)\n",
            "\toption resolve 'stun:STUN_SERVER'   # learns the address to seal in the packet\n",
        )
    } else {
        ("", "")
    };
    let mut bytes = [0u8; postern::spa::KEY_LEN];
    if let Err(e) = postern::random::fill(&mut bytes) {
        return Ok(failed(&format!("keygen: {e}")));
    }
    let key = Key::from_bytes(bytes).to_base64();
    print!(
        "\
{key}

# On the router, append to /etc/config/postern (then: postern check; reload postern):
config client '{name}'
\toption key '{key}'
\tlist   allow 'tcp:22'
\toption max_duration '{max}'
{router_extra}
# On the client, append to ~/.config/postern/client.conf (then: postern spa --stanza {name}):
config stanza '{name}'
\toption host 'ROUTER_ADDRESS_OR_NAME'
\toption key '{key}'
\tlist   access 'tcp/22'
{client_extra}",
        max = config::DEFAULT_MAX_DURATION
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "desktop")]
fn cmd_demo(args: &[String]) -> Result<ExitCode, String> {
    if let Some(a) = args.first() {
        return Err(format!("demo: unexpected argument '{a}'"));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    match demo::run(&exe) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("demo FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
