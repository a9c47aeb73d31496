//! Command-line conventions of the `postern` binary, for every subcommand of
//! the usage table (src/cli/usage.rs): `--help`, `-h` and `help SUB` print
//! that subcommand's usage and exit 0; `--version`/`-V` work everywhere;
//! unknown options name the subcommand and the closest option; exit codes
//! are 0 ok, 1 error, 2 usage.

use std::process::{Command, Output};

use postern::cli::usage::COMMANDS;

/// Runs the binary; under qemu-user (the cross runner sets
/// `POSTERN_QEMU_USER` to the emulator) through the same emulator, since
/// nothing registers it with binfmt_misc.
fn postern(args: &[&str]) -> Output {
    let exe = env!("CARGO_BIN_EXE_postern");
    let mut cmd = match std::env::var_os("POSTERN_QEMU_USER") {
        Some(qemu) => {
            let mut c = Command::new(qemu);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).output().expect("run postern")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn version_line() -> String {
    format!("postern {}\n", env!("CARGO_PKG_VERSION"))
}

#[test]
fn every_subcommand_answers_help_h_and_help_sub_alike() {
    for cmd in COMMANDS {
        let help = postern(&["help", cmd.name]);
        assert_eq!(help.status.code(), Some(0), "help {}", cmd.name);
        let usage = text(&help.stdout);
        assert!(
            usage.starts_with(&format!("usage:\n  postern {}", cmd.name)),
            "help {}: {usage}",
            cmd.name
        );
        assert!(help.stderr.is_empty(), "help {}", cmd.name);
        for flag in ["--help", "-h"] {
            let out = postern(&[cmd.name, flag]);
            assert_eq!(out.status.code(), Some(0), "{} {flag}", cmd.name);
            assert_eq!(text(&out.stdout), usage, "{} {flag}", cmd.name);
            assert!(out.stderr.is_empty(), "{} {flag}", cmd.name);
        }
    }
    // After other arguments too, and before a bad one.
    let out = postern(&["spa", "192.0.2.1", "-A", "tcp/22", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage:\n  postern spa"));
    let out = postern(&["daemon", "--help", "--no-such-option"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn top_level_help_lists_every_subcommand() {
    for args in [&["help"][..], &["--help"][..], &["-h"][..]] {
        let out = postern(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let usage = text(&out.stdout);
        for cmd in COMMANDS {
            assert!(
                usage.contains(&format!("  postern {}", cmd.name)),
                "{args:?}: {}",
                cmd.name
            );
        }
        assert!(usage.contains("exit status: 0"), "{args:?}");
    }
    // No arguments at all: the usage on stderr, a usage error.
    let out = postern(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("  postern daemon"));
}

#[test]
fn version_everywhere() {
    for args in [&["version"][..], &["--version"][..], &["-V"][..]] {
        let out = postern(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), version_line(), "{args:?}");
    }
    for cmd in COMMANDS {
        for flag in ["--version", "-V"] {
            let out = postern(&[cmd.name, flag]);
            assert_eq!(out.status.code(), Some(0), "{} {flag}", cmd.name);
            assert_eq!(text(&out.stdout), version_line(), "{} {flag}", cmd.name);
        }
    }
}

#[test]
fn unknown_options_name_the_subcommand_and_suggest_the_closest() {
    for cmd in COMMANDS {
        let out = postern(&[cmd.name, "--zzzzzzzz"]);
        assert_eq!(out.status.code(), Some(2), "{}", cmd.name);
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "postern: {}: unknown option '--zzzzzzzz'",
                cmd.name
            )),
            "{}: {err}",
            cmd.name
        );
        assert!(
            err.contains(&format!("run 'postern help {}' for usage", cmd.name)),
            "{}: {err}",
            cmd.name
        );
        // Each long option with two letters swapped is recognised as a typo.
        for option in cmd
            .spellings()
            .filter(|s| s.starts_with("--") && s.len() > 5)
        {
            let mut typo: Vec<char> = option.chars().collect();
            typo.swap(3, 4);
            let typo: String = typo.into_iter().collect();
            if cmd.option(&typo).is_some() {
                continue;
            }
            let out = postern(&[cmd.name, &typo]);
            assert_eq!(out.status.code(), Some(2), "{} {typo}", cmd.name);
            let err = text(&out.stderr);
            assert!(
                err.contains(&format!("did you mean '{option}'?")),
                "{} {typo}: {err}",
                cmd.name
            );
        }
    }
}

#[test]
fn unknown_subcommands_suggest_the_closest() {
    let out = postern(&["stauts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown command 'stauts' (did you mean 'status'?)"));
    let out = postern(&["help", "deamon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("(did you mean 'daemon'?)"));
}

#[test]
fn exit_codes_0_ok_1_error_2_usage() {
    let dir = std::env::temp_dir().join(format!("postern-cli-conventions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good");
    let bad = dir.join("bad");
    std::fs::write(
        &good,
        "config postern 'main'\n\toption interface 'lo'\nconfig sequence 's'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:8000'\n\tlist open 'tcp:22'\n",
    )
    .unwrap();
    std::fs::write(&bad, "config postern 'main'\n\toption frobnicate '1'\n").unwrap();
    let code = |args: &[&str]| postern(args).status.code();
    let good = good.to_str().unwrap();
    let bad = bad.to_str().unwrap();
    let nowhere = dir.join("no.sock");
    let nowhere = nowhere.to_str().unwrap();
    assert_eq!(code(&["check", "-c", good]), Some(0));
    // 1: the command ran and failed.
    assert_eq!(code(&["check", "-c", bad]), Some(1));
    assert_eq!(code(&["status", "-s", nowhere]), Some(1));
    assert_eq!(code(&["unban", "192.0.2.1", "-s", nowhere]), Some(1));
    // 2: usage errors.
    assert_eq!(code(&["check", "-c"]), Some(2));
    assert_eq!(code(&["check", "--jsno"]), Some(2));
    assert_eq!(code(&["schema", "extra"]), Some(2));
    assert_eq!(code(&["frobnicate"]), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
