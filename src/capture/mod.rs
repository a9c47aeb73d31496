//! STUB — replaced by AF_PACKET capture.
