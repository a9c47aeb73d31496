//! STUB — replaced by the UCI parser.
use super::ConfigError;
/// A section.
#[derive(Debug)]
pub struct Section;
/// Parses UCI text.
pub fn parse(_file: &str, _text: &str) -> Result<Vec<Section>, Vec<ConfigError>> {
    Ok(Vec::new())
}
