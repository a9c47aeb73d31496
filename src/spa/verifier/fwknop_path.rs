//! The verifier's fwknop path: an fwknop packet in, a grant or a refusal out.
//!
//! Owns the order of the checks for fwknop packets, which is fwknopd's with
//! postern's bounds: cheap checks (length and alphabet chose this path; the
//! `U2FsdGVkX1` prefix is refused here) → a client with fwknop keys for the
//! source → the fwknop path's own budget (one unit per candidate) → one HMAC per candidate,
//! constant-time, before any decryption → decryption and the plaintext (with
//! its digest) → timestamp window, replay guard and floor, replay cache
//! (keyed on the packet's SHA-256; records it whatever follows) → address
//! policy → allowed ports; a command message (type
//! 0) runs the client's command whose `fwknop_match` equals its text, a NAT
//! message (types 2, 4) opens the client's forward with that protocol,
//! external port, LAN host and port. The duration is the
//! client timeout (`fwknop -f`), capped at `max_duration` as fwknopd caps it
//! at `MAX_FW_TIMEOUT`, or the client's `fwknop_timeout`.

use core::net::IpAddr;

use super::{fail, Detail, Fail, Grant, Refusal, Verifier};
use crate::spa::fwknop::{self, message, message::MessageType};
use crate::spa::{Kind, ReplayEntry};
use crate::time::Now;

impl Verifier {
    /// Checks a payload that looks like an fwknop packet.
    pub(super) fn check_fwknop(
        &mut self,
        now: Now,
        src: IpAddr,
        payload: &[u8],
    ) -> Result<(usize, Grant), Fail> {
        let none = Detail::None;
        fwknop::precheck(payload).map_err(|p| match p {
            fwknop::Precheck::Length => fail(Refusal::BadLength, None, none),
            // A prefixed or non-base64 packet can never authenticate.
            fwknop::Precheck::Prefix | fwknop::Precheck::Charset => {
                fail(Refusal::AuthFailed, None, none)
            }
        })?;
        let candidate = |c: &&super::ClientKey| c.fwknop.is_some() && c.admits(src);
        let candidates = self.clients.iter().filter(candidate).count();
        if candidates == 0 {
            return Err(fail(Refusal::NoClientForSource, None, none));
        }
        // candidates <= MAX_CLIENTS: fits in u32.
        if !self.fwknop_budget.take(now.mono, candidates as u32) {
            return Err(fail(Refusal::BudgetExceeded, None, none));
        }
        let mut found = None;
        for (i, c) in self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| candidate(c))
        {
            let Some(f) = &c.fwknop else { continue };
            self.counters.hmac_attempts += 1;
            if fwknop::authenticate(&f.keys, payload) {
                found = Some(i);
                break;
            }
        }
        let Some(i) = found else {
            return Err(fail(Refusal::AuthFailed, None, none));
        };
        let who = Some(i);
        let Some(f) = &self.clients[i].fwknop else {
            return Err(fail(Refusal::AuthFailed, None, none));
        };
        let timeout = f.timeout.as_secs();
        let bad = |e: fwknop::Error| {
            let r = if e.is_unsupported() {
                Refusal::Unsupported
            } else {
                Refusal::BadRequest
            };
            fail(r, who, Detail::Fwknop(e))
        };
        let plain = fwknop::decrypt(&f.keys, payload, &mut self.fwknop_scratch).map_err(bad)?;
        let m = message::parse(plain).map_err(bad)?;

        let id = fwknop::replay_id(payload);
        self.fresh(now, i, m.timestamp, id, m.access.addr.is_none())?;
        let kind = match (m.kind, m.nat) {
            (MessageType::Command, _) => Kind::Command,
            (_, Some(_)) => Kind::Forward,
            _ => Kind::Open,
        };
        let addr = self.target(i, src, m.access.addr.map(IpAddr::V4), kind)?;
        let (kind, item) = match (m.kind, m.nat) {
            (MessageType::Command, _) => {
                self.ports.clear();
                let text = &m.command[..];
                let item = self.command_allowed(i, |c| {
                    c.fwknop_match.as_deref().map(str::as_bytes) == Some(text)
                })?;
                (Kind::Command, item)
            }
            (_, Some(nat)) => {
                self.ports.clear();
                // parse() gives a NAT message exactly one port.
                let Some(p) = m.access.ports.first().copied() else {
                    return Err(fail(Refusal::BadRequest, who, Detail::None));
                };
                let item = self.forward_allowed(i, |f| {
                    let w = &f.forward;
                    w.proto == p.proto
                        && w.port == p.port
                        && w.to4 == Some(nat.addr)
                        && w.to_port == nat.port
                })?;
                (Kind::Forward, item)
            }
            _ => {
                self.allowed(i, &m.access.ports)?;
                (Kind::Open, 0)
            }
        };
        let max = self.clients[i].max_duration;
        let duration = match kind {
            Kind::Command => 0,
            _ => m
                .client_timeout
                .map_or(timeout, |t| u64::from(t).min(max))
                .min(u64::from(u32::MAX)) as u32,
        };
        Ok((
            i,
            Grant {
                kind,
                addr,
                item,
                duration,
                record: ReplayEntry {
                    nonce: id,
                    timestamp: m.timestamp,
                },
            },
        ))
    }
}
