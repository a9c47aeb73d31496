//! `postern`: the command line. Each subcommand is a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use postern::config::{self, BackendKind};
use postern::port::PortSpec;
use postern::{client, daemon, demo, logger};

const DEFAULT_CONFIG: &str = "/etc/config/postern";

const USAGE: &str = "\
postern — port knocking for routers

usage:
  postern daemon [-c FILE] [-i DEV]... [--backend KIND] [--log-level LEVEL]
        Guard the ports of FILE's sequences (default /etc/config/postern),
        sniffing knocks on each DEV. KIND: auto | fw4 | nft | dry-run.
        SIGHUP reloads FILE (a bad file is refused, the old one stays);
        SIGTERM stops and removes postern's own nftables table.
  postern check [-c FILE]
        Validate FILE: every error with file:line (exit 1), or a summary.
  postern knock [--delay MS] HOST PROTO:PORT...
        Send a knock sequence, e.g. postern knock 192.0.2.1 tcp:7000 udp:8000 tcp:9000
  postern demo
        (root) Build a router and a client network namespace, guard a service
        in the router, knock it open from the client, watch it close again.
  postern version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    logger::init(log::LevelFilter::Info);
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "daemon" => cmd_daemon(rest),
        "check" => cmd_check(rest),
        "knock" => cmd_knock(rest),
        "demo" => cmd_demo(rest),
        "version" | "--version" | "-V" => {
            println!("postern {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command '{other}'")),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("postern: {msg}");
            eprintln!("run 'postern help' for usage");
            ExitCode::from(2)
        }
    }
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

fn cmd_check(args: &[String]) -> Result<ExitCode, String> {
    let mut path = PathBuf::from(DEFAULT_CONFIG);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => path = PathBuf::from(value(&mut it, a)?),
            other => return Err(format!("check: unexpected argument '{other}'")),
        }
    }
    match config::load(&path) {
        Ok(cfg) => {
            println!("{}: ok", path.display());
            print!("{}", config::typed::summary(&cfg));
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            for e in &errs {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errs.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn cmd_knock(args: &[String]) -> Result<ExitCode, String> {
    let mut delay = Duration::ZERO;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
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
    let host = client::resolve(host).map_err(|e| e.to_string())?;
    client::knock(host, &knocks, delay).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

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
