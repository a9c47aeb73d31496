//! The man page (`docs/postern.8`) is generated from the usage table
//! (`src/cli/usage.rs`) that `postern help` prints, and must match it:
//! a subcommand or option added to the table without regenerating the page
//! fails here. Regenerate with
//!
//!     POSTERN_BLESS=1 cargo test --test man_page
//!
//! The page lists the desktop build's subcommands (the README installs it
//! with the desktop build); it says which a router build leaves out.

use postern::cli::usage::{Command, COMMANDS, EXIT_STATUS, HEADER};

const PAGE: &str = "docs/postern.8";

/// roff text: backslashes and hyphens escaped, a control character at the
/// start of a line defused.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// One paragraph: the terminal's line breaks become spaces (roff fills).
fn paragraph(text: &str) -> String {
    roff(&text.split('\n').collect::<Vec<_>>().join(" "))
}

fn subcommand(out: &mut String, cmd: &Command) {
    for form in cmd.forms {
        out.push_str(".TP\n.B postern ");
        out.push_str(&paragraph(form.synopsis));
        out.push('\n');
        out.push_str(&paragraph(form.about));
        out.push('\n');
    }
    if cmd.desktop {
        out.push_str("(Desktop build only.)\n");
    }
}

fn render() -> String {
    let mut out = String::new();
    out.push_str(".\\\" Generated from src/cli/usage.rs by tests/man_page.rs; do not edit:\n");
    out.push_str(".\\\" POSTERN_BLESS=1 cargo test --test man_page regenerates it.\n");
    out.push_str(&format!(
        ".TH POSTERN 8 \"\" \"postern {}\" \"System Administration\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    let summary = HEADER.split_once(" — ").map_or(HEADER, |(_, s)| s);
    out.push_str(&format!(".SH NAME\npostern \\- {}\n", roff(summary)));
    out.push_str(
        ".SH SYNOPSIS\n.B postern\n.I subcommand\n[\\fIoptions\\fR] [\\fIarguments\\fR]\n",
    );
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&paragraph(
        "postern keeps protected ports closed and opens one for a trusted client's\n\
         own address, for a short time, after a secret knock sequence or one\n\
         encrypted packet (Single Packet Authorization). Grants are firewall set\n\
         elements with kernel timeouts. The router build (the OpenWrt packages)\n\
         holds the subcommands a router runs; the desktop build also holds the\n\
         client (knock, spa), import and the demo.",
    ));
    out.push_str("\n.SH SUBCOMMANDS\n");
    for cmd in COMMANDS {
        subcommand(&mut out, cmd);
    }
    out.push_str(".SH OPTIONS\n");
    out.push_str(&paragraph(
        "Every subcommand takes -h or --help (its usage, exit 0) and -V or\n\
         --version. An unknown option is a usage error that names the\n\
         subcommand and the closest option it takes.",
    ));
    out.push_str("\n.SH EXIT STATUS\n");
    out.push_str(&paragraph(EXIT_STATUS));
    out.push_str("\n.SH FILES\n");
    for (file, what) in [
        ("/etc/config/postern", "the router's configuration (UCI)"),
        (
            "~/.config/postern/client.conf",
            "the client's stanzas (spa --stanza, knock --stanza)",
        ),
        (
            "/var/run/postern.sock",
            "the running daemon's control socket",
        ),
    ] {
        out.push_str(&format!(".TP\n.I {}\n{}\n", roff(file), roff(what)));
    }
    out.push_str(".SH SEE ALSO\n");
    out.push_str(&paragraph(
        "The README and docs/ of the postern sources: the configuration\n\
         reference, the knock modes, the SPA protocol, OpenWrt packages.",
    ));
    out.push('\n');
    out
}

#[test]
fn the_man_page_matches_the_usage_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let want = render();
    if std::env::var_os("POSTERN_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{PAGE} is out of date with src/cli/usage.rs: run\n  POSTERN_BLESS=1 cargo test --test man_page"
    );
}

#[test]
fn every_subcommand_and_option_is_on_the_page() {
    let page = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE))
        .unwrap();
    for cmd in COMMANDS {
        assert!(
            page.contains(&format!(".B postern {}", roff(cmd.name))),
            "{}",
            cmd.name
        );
        for form in cmd.forms {
            for word in form.synopsis.split([' ', '\n', '[', ']', '(', ')', '|']) {
                if word.starts_with('-') {
                    assert!(page.contains(&roff(word)), "{}: {word}", cmd.name);
                }
            }
        }
    }
}

#[test]
fn the_man_page_renders_without_warnings() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let Ok(out) = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
    else {
        eprintln!("(groff not installed: the man page's rendering is not checked here)");
        return;
    };
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
