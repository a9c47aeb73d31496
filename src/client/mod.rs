//! Client side (stub).
