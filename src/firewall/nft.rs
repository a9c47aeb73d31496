//! STUB — replaced by the nftables backend.
