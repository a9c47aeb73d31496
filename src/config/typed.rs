//! STUB — replaced by typed config.
use super::{uci::Section, Config, ConfigError, Main};
/// Converts sections.
pub fn from_sections(_file: &str, _s: &[Section]) -> Result<Config, Vec<ConfigError>> {
    Ok(Config { main: Main::default(), sequences: Vec::new() })
}
