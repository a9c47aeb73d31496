//! Target `uci`: the UCI reader and the typed configuration on arbitrary bytes.
//!
//! Invariants: no panic; bytes and text entry points agree; every error names
//! the file and a line inside it (or 0); parsed sections survive
//! `render` → parse unchanged (but for line numbers); a configuration that
//! validates stays within the compile-time limits and can build an engine and
//! a capture filter.

use postern::config::{
    self, typed, uci, ConfigError, MAX_CLIENTS, MAX_SEQUENCES, MAX_SEQUENCE_STEPS,
};
use postern::engine::Engine;

use super::bpf;

const FILE: &str = "fuzz.conf";

/// Runs one input.
pub fn run(data: &[u8]) {
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
    let parsed = uci::parse_bytes(FILE, data);
    if let Ok(text) = core::str::from_utf8(data) {
        assert_eq!(parsed, uci::parse(FILE, text), "bytes and text disagree");
    }
    let sections = match parsed {
        Ok(s) => s,
        Err(errors) => return check_errors(&errors, lines),
    };
    let rendered = uci::render(&sections);
    let again = uci::parse(FILE, &rendered).expect("rendered sections do not parse");
    assert_eq!(
        strip_lines(&again),
        strip_lines(&sections),
        "render changed the sections:\n{rendered}"
    );

    match typed::from_sections(FILE, &sections) {
        Err(errors) => check_errors(&errors, lines),
        Ok(cfg) => {
            if let Ok(text) = core::str::from_utf8(data) {
                assert_eq!(config::parse_str(FILE, text).as_ref(), Ok(&cfg));
            }
            assert!(cfg.active_sequences().count() <= MAX_SEQUENCES);
            assert!(cfg.active_clients().count() <= MAX_CLIENTS);
            for s in &cfg.sequences {
                assert!((1..=MAX_SEQUENCE_STEPS).contains(&s.knocks.len()));
                assert!(
                    s.knocks.windows(2).all(|w| w[0] != w[1]),
                    "equal consecutive steps"
                );
                assert!(!s.ports.is_empty());
            }
            for c in &cfg.clients {
                assert!(!c.allow.is_empty());
            }
            let _ = typed::summary(&cfg);
            let _ = cfg.guarded_ports();
            let engine = Engine::new(&cfg);
            assert_eq!(engine.knocks_in_progress(), 0);
            bpf::check_program(&postern::capture::bpf::build(&cfg.capture_ports(), true));
        }
    }
}

/// Errors are about this file, on one of its lines, and say something.
fn check_errors(errors: &[ConfigError], lines: usize) {
    assert!(!errors.is_empty(), "refused without an error");
    for e in errors {
        assert_eq!(e.file, FILE);
        assert!(
            e.line <= lines,
            "line {} of a {lines}-line file: {e}",
            e.line
        );
        assert!(!e.message.is_empty());
        let _ = e.to_string();
    }
}

/// Sections with every line number zeroed.
fn strip_lines(sections: &[uci::Section]) -> Vec<uci::Section> {
    let mut v = sections.to_vec();
    for s in &mut v {
        s.line = 0;
        for e in &mut s.options {
            e.line = 0;
            e.item_lines.iter_mut().for_each(|l| *l = 0);
        }
    }
    v
}
