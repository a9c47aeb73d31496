//! Command-line conventions shared by every subcommand: `--help`/`-h` and
//! `--version`/`-V` anywhere, unknown options named with the closest one
//! this subcommand takes, and the usage table ([`usage`]). Pure functions of
//! the arguments; `src/main.rs` prints and exits.

pub mod usage;

use usage::Command;

/// What the arguments of a subcommand ask for, before its own parser runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// `-h` or `--help`: print the subcommand's usage, exit 0.
    Help,
    /// `-V` or `--version`: print the version, exit 0.
    Version,
    /// Every option is one `cmd` takes: run it.
    Run,
}

/// Looks through `args` (after the subcommand's name) for `--help` and
/// `--version`, and for an option `cmd` does not take: then the error names
/// the subcommand and the closest option it does take. A value that follows
/// an option taking one is not an option, whatever it looks like.
pub fn scan(cmd: &Command, args: &[String]) -> Result<Scan, String> {
    let mut unknown = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Scan::Help),
            "-V" | "--version" => return Ok(Scan::Version),
            a if a.len() > 1 && a.starts_with('-') => match cmd.option(a) {
                Some(true) => {
                    it.next();
                }
                Some(false) => {}
                None => {
                    unknown.get_or_insert(a);
                }
            },
            _ => {}
        }
    }
    match unknown {
        None => Ok(Scan::Run),
        Some(a) => Err(unknown_option(cmd, a)),
    }
}

/// "unknown option '--clsoe' (did you mean '--close'?)", or the options
/// there are when none is close.
pub fn unknown_option(cmd: &Command, option: &str) -> String {
    let mut msg = format!("{}: unknown option '{option}'", cmd.name);
    match closest(option, cmd.spellings()) {
        Some(best) => msg.push_str(&format!(" (did you mean '{best}'?)")),
        None if cmd.options.is_empty() => msg.push_str(" (it takes none)"),
        None => {}
    }
    msg
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a likely typo (at most a third of the word's length, and 3).
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (insertions, deletions, substitutions) of two words.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// "unknown command 'stauts' (did you mean 'status'?)".
pub fn unknown_command(name: &str) -> String {
    let names = usage::COMMANDS
        .iter()
        .filter(|c| usage::in_this_build(c))
        .map(|c| c.name);
    match closest(name, names) {
        Some(best) => format!("unknown command '{name}' (did you mean '{best}'?)"),
        None => format!("unknown command '{name}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::usage::{find, COMMANDS};
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn help_and_version_win_anywhere_but_in_a_value() {
        let spa = find("spa").unwrap();
        assert_eq!(scan(spa, &args("h -A tcp/22 --help")), Ok(Scan::Help));
        assert_eq!(scan(spa, &args("-h")), Ok(Scan::Help));
        assert_eq!(scan(spa, &args("--bogus --version")), Ok(Scan::Version));
        // `-n -h`: a stanza named "-h" is a value, not a request for help.
        assert_eq!(scan(spa, &args("-n -h")), Ok(Scan::Run));
    }

    #[test]
    fn unknown_options_name_the_subcommand_and_the_closest_option() {
        let spa = find("spa").unwrap();
        assert_eq!(
            scan(spa, &args("h --clsoe")),
            Err("spa: unknown option '--clsoe' (did you mean '--close'?)".into())
        );
        let daemon = find("daemon").unwrap();
        assert_eq!(
            scan(daemon, &args("--backed fw4")),
            Err("daemon: unknown option '--backed' (did you mean '--backend'?)".into())
        );
        assert_eq!(
            scan(daemon, &args("--frobnicate")),
            Err("daemon: unknown option '--frobnicate'".into())
        );
        assert_eq!(
            scan(find("demo").unwrap(), &args("--fast")),
            Err("demo: unknown option '--fast' (it takes none)".into())
        );
    }

    #[test]
    fn status_s_takes_a_socket_where_spa_s_takes_nothing() {
        assert_eq!(
            scan(find("status").unwrap(), &args("-s --json")),
            Ok(Scan::Run)
        );
        assert_eq!(
            scan(find("spa").unwrap(), &args("-s --close")),
            Ok(Scan::Run)
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("--close", "--close"), 0);
        assert_eq!(edit_distance("--clsoe", "--close"), 2);
        assert_eq!(edit_distance("stauts", "status"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("x", ["--json"].into_iter()), None);
        assert_eq!(
            unknown_command("stauts"),
            "unknown command 'stauts' (did you mean 'status'?)"
        );
    }

    #[test]
    fn every_option_in_a_synopsis_is_in_the_table_and_back() {
        for cmd in COMMANDS {
            let shown: Vec<&str> = cmd
                .forms
                .iter()
                .flat_map(|f| f.synopsis.split([' ', '\n', '[', ']', '(', ')', '|']))
                .filter(|w| w.starts_with('-'))
                .collect();
            for w in &shown {
                assert!(
                    cmd.option(w).is_some(),
                    "{}: {w} is not in options",
                    cmd.name
                );
            }
            for entry in cmd.options {
                let spellings: Vec<&str> =
                    entry.split(' ').filter(|w| w.starts_with('-')).collect();
                assert!(
                    spellings.iter().any(|s| shown.contains(s)),
                    "{}: {entry} is in no synopsis",
                    cmd.name
                );
            }
        }
    }

    #[test]
    fn the_router_overview_leaves_the_desktop_commands_out() {
        let router = usage::overview(false);
        let desktop = usage::overview(true);
        for cmd in COMMANDS {
            let line = format!(
                "  postern {}",
                cmd.forms[0].synopsis.split('\n').next().unwrap()
            );
            assert!(desktop.contains(&line), "{line}");
            assert_eq!(router.contains(&line), !cmd.desktop, "{line}");
        }
    }
}
