//! `option on_open` / `option on_close` in `config sequence` and `config
//! client` sections: syntax here, and [`cross_check`] that each names a
//! `config command` section.

use super::actions::{is_action_name, NAME_RULE};
use super::{did_you_mean, single, Errors};
use crate::config::actions::Command;
use crate::config::hooks::Hooks;
use crate::config::uci::Section;

/// The hook options a sequence or client section knows.
pub(super) const HOOK_OPTIONS: &[&str] = &["on_open", "on_close"];

/// A section's hooks with the lines of their options.
pub(super) struct CheckedHooks {
    pub(super) hooks: Hooks,
    lines: [usize; 2],
}

/// The hooks of section `s` (named `origin` in grants), if it sets any.
pub(super) fn section(cx: &mut Errors, s: &Section, origin: String) -> Option<CheckedHooks> {
    let mut names: [Option<String>; 2] = [None, None];
    let mut lines = [0; 2];
    for (i, option) in HOOK_OPTIONS.iter().enumerate() {
        let Some(e) = s.get(option) else { continue };
        let Some(v) = single(cx, e) else { continue };
        if !is_action_name(v) {
            cx.push(e.line, format!("{option} '{v}': {NAME_RULE}"));
            continue;
        }
        names[i] = Some(v.to_string());
        lines[i] = e.line;
    }
    let [on_open, on_close] = names;
    if on_open.is_none() && on_close.is_none() {
        return None;
    }
    Some(CheckedHooks {
        hooks: Hooks {
            origin,
            on_open,
            on_close,
        },
        lines,
    })
}

/// Every hook names a `config command` section.
pub(super) fn cross_check(cx: &mut Errors, hooks: &[CheckedHooks], commands: &[Command]) {
    let known: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    for h in hooks {
        let named = [&h.hooks.on_open, &h.hooks.on_close];
        for ((option, name), line) in HOOK_OPTIONS.iter().zip(named).zip(h.lines) {
            let Some(name) = name else { continue };
            if !known.contains(&name.as_str()) {
                let msg = format!(
                    "{option} '{name}' is not a config command section{}",
                    did_you_mean(name, &known)
                );
                cx.push(line, msg);
            }
        }
    }
}

/// The `hooks:` lines of `postern check`'s summary (none without hooks).
pub(super) fn summary(out: &mut String, cfg: &crate::config::Config) {
    use core::fmt::Write as _;
    if cfg.hooks.is_empty() {
        return;
    }
    let _ = writeln!(out, "hooks: {}", cfg.hooks.len());
    for h in &cfg.hooks {
        let on = |c: &Option<String>| c.as_deref().unwrap_or("-").to_string();
        let _ = writeln!(
            out,
            "  {}: on_open {}, on_close {}",
            h.origin,
            on(&h.on_open),
            on(&h.on_close)
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    fn text(extra_seq: &str, extra_client: &str) -> String {
        format!(
            "config command 'up'\n\tlist exec '/bin/true'\n\
             config command 'down'\n\tlist exec '/bin/true'\n\
             config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:8000'\n\
             \tlist open 'tcp:22'\n{extra_seq}\
             config client 'laptop'\n\toption key '{KEY}'\n\tlist allow 'tcp:22'\n{extra_client}"
        )
    }

    #[test]
    fn sequences_and_clients_name_their_hooks() {
        let cfg = parse_str(
            "f",
            &text(
                "\toption on_open 'up'\n\toption on_close 'down'\n",
                "\toption on_close 'down'\n",
            ),
        )
        .unwrap();
        assert_eq!(cfg.hooks.len(), 2);
        let ssh = crate::config::Hooks::of(&cfg.hooks, "ssh").unwrap();
        assert_eq!(ssh.on_open.as_deref(), Some("up"));
        assert_eq!(ssh.on_close.as_deref(), Some("down"));
        let laptop = crate::config::Hooks::of(&cfg.hooks, "laptop").unwrap();
        assert_eq!(
            (laptop.on_open.as_deref(), laptop.on_close.as_deref()),
            (None, Some("down"))
        );
        let summary = crate::config::typed::summary(&cfg);
        assert!(
            summary.contains(
                "hooks: 2\n  ssh: on_open up, on_close down\n  laptop: on_open -, on_close down\n"
            ),
            "{summary}"
        );
        let plain = parse_str("f", &text("", "")).unwrap();
        assert!(plain.hooks.is_empty());
        assert!(!crate::config::typed::summary(&plain).contains("hooks:"));
    }

    #[test]
    fn a_hook_must_name_a_command_section_and_says_where() {
        let errors = parse_str(
            "f",
            &text("\toption on_open 'upp'\n", "\toption on_close 'x y'\n"),
        )
        .unwrap_err();
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "f:9: on_open 'upp' is not a config command section (did you mean 'up'?)",
                "f:13: on_close 'x y': names are 1-32 letters, digits or _",
            ]
        );
    }
}
