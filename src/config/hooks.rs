//! Open and close hooks: the `config command` a sequence or client runs
//! when one of its grants opens (`option on_open`) and when it ends
//! (`option on_close`). See `docs/commands-and-forwards.md`.

/// The hooks of one `config sequence` or `config client` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// The section's name (`@type[N]` when anonymous): what the engine
    /// names as the grant's origin.
    pub origin: String,
    /// `option on_open`: the command run when a grant of this section opens.
    pub on_open: Option<String>,
    /// `option on_close`: the command run once when that grant ends
    /// (expiry, a close request, or a reload that removes the section).
    pub on_close: Option<String>,
}

impl Hooks {
    /// The hooks of `origin` in `all`, if it has any.
    pub fn of<'a>(all: &'a [Hooks], origin: &str) -> Option<&'a Hooks> {
        all.iter().find(|h| h.origin == origin)
    }
}
