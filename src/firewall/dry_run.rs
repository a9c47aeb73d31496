//! STUB — replaced by the dry-run backend.
