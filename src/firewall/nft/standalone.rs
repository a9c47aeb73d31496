//! `table inet postern` as nf_tables netlink batches: setup and teardown.
//!
//! Owns the netlink encoding of the standalone table that
//! [`super::ruleset::standalone_setup_script`] describes in `nft` syntax, so
//! that the daemon needs no `nft` binary (routers often ship without one).
//! The batch is what `nft -f` 1.0.6 sends for that script — checked byte for
//! byte against a capture — plus `NLM_F_ACK` on every message, so that the
//! caller can tell which step failed. Pure: no syscalls, no panics.
//!
//! Byte order: message and attribute headers are host order (see
//! [`super::netlink`]); every `u32` attribute (registers, offsets, hook,
//! priority, verdicts) is big-endian; the `ct state` mask compared in a
//! register is host order, as the kernel keeps the state bits in a host `u32`.

use super::netlink::{batch_marker, NAME_MAX};
use super::netlink::{
    nft_type, EncodeError, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFPROTO_INET, NFTA_DATA_VALUE,
    NFTA_LIST_ELEM, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_NAME, NFTA_SET_TABLE, NFT_MSG_DELSETELEM, NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
};
use super::ruleset::{
    GUARD_SET, STANDALONE_ALLOW4, STANDALONE_ALLOW6, STANDALONE_BAN4, STANDALONE_BAN6,
    STANDALONE_CHAIN,
};
use crate::firewall::nfnetlink::wire::Writer;
use crate::port::PortSpec;

const NLM_F_APPEND: u16 = 0x800;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;

const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_LOCAL_IN: u32 = 1;
/// `priority filter - 5`.
const CHAIN_PRIORITY: i32 = -5;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_ACCEPT: u32 = 1;

/// `NFTA_LOOKUP_FLAGS`: `NFT_LOOKUP_F_INV` (`!= @set`).
const NFT_LOOKUP_F_INV: u32 = 1;
/// `reject with tcp reset`: `NFT_REJECT_TCP_RST`, code 0.
const NFT_REJECT_TCP_RST: u32 = 1;
/// `reject` in an inet chain: `NFT_REJECT_ICMPX_UNREACH` with
/// `NFT_REJECT_ICMPX_PORT_UNREACH` (ICMP or ICMPv6 port unreachable).
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;
const IPPROTO_TCP: u8 = 6;

/// nftables' registers: `NFT_REG_VERDICT`, the 128-bit `NFT_REG_1`/`NFT_REG_2`
/// and 32-bit `NFT_REG32_xx` (8 + xx), as `nft` allocates them.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const REG32_01: u32 = 9;
const REG32_02: u32 = 10;
const REG32_05: u32 = 13;

const NFT_CT_STATE: u32 = 0;
/// `established,related`: `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
const CT_STATE_ESTABLISHED_RELATED: u32 = 0x2 | 0x4;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// nft's datatype ids, concatenated 6 bits apart: `inet_proto . inet_service`,
/// and with `ipv4_addr` or `ipv6_addr` in front.
const KEY_PROTO_SERVICE: u32 = (12 << 6) | 13;
const KEY_V4_PROTO_SERVICE: u32 = (((7 << 6) | 12) << 6) | 13;
const KEY_V6_PROTO_SERVICE: u32 = (((8 << 6) | 12) << 6) | 13;
/// nft's datatype ids of `ipv4_addr` and `ipv6_addr` (the ban sets' keys).
const KEY_V4: u32 = 7;
const KEY_V6: u32 = 8;
/// What nft 1.0.6 stores as a set's user data (libnftnl TLVs, values in host
/// order): key byte order 0, then a nested `u32` 13 and an empty entry. Kept so
/// that `nft list` shows the same table whether nft or postern made it.
fn set_userdata() -> [u8; 16] {
    let mut u = [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 0, 0, 0, 0, 1, 0];
    u[10..14].copy_from_slice(&13u32.to_ne_bytes());
    u
}

/// What nft 1.0.6 stores as the user data of a set keyed by an address: the
/// key byte order, big endian (2, a host-order `u32`).
fn addr_set_userdata() -> [u8; 6] {
    let mut u = [0, 4, 0, 0, 0, 0];
    u[2..6].copy_from_slice(&2u32.to_ne_bytes());
    u
}

/// A batch written into a buffer: its length and the sequence numbers whose
/// acks tell how it went (every message between the batch markers asks for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Bytes written.
    pub len: usize,
    /// Sequence number of the first message that is acknowledged.
    pub first_ack: u32,
    /// Sequence number of the last message that is acknowledged.
    pub last_ack: u32,
}

/// Bytes that suffice for [`setup`] with `guarded` ports (for a `Vec` the
/// caller allocates: setup runs at start and reload only).
pub fn setup_buf_len(guarded: usize) -> usize {
    3072 + 20 * guarded
}

/// Sequence numbers for a batch, counting from `seq`.
struct Seq(u32);

impl Seq {
    fn next(&mut self) -> u32 {
        let s = self.0;
        self.0 = self.0.wrapping_add(1);
        s
    }
}

fn be(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// One expression of a rule: `NFTA_LIST_ELEM { NAME, DATA { … } }`; `body`
/// writes the DATA attributes.
fn expr(
    w: &mut Writer<'_>,
    name: &str,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let elem = w.begin_nest(NFTA_LIST_ELEM)?;
    w.attr_name(NFTA_EXPR_NAME, name, NAME_MAX)?;
    let data = w.begin_nest(NFTA_EXPR_DATA)?;
    body(w)?;
    w.end_nest(data)?;
    w.end_nest(elem)
}

/// `NFTA_DATA_VALUE` inside a nest of type `ty`.
fn data_value(w: &mut Writer<'_>, ty: u16, value: &[u8]) -> Result<(), EncodeError> {
    let n = w.begin_nest(ty)?;
    w.attr(NFTA_DATA_VALUE, value)?;
    w.end_nest(n)
}

fn meta(w: &mut Writer<'_>, key: u32, dreg: u32) -> Result<(), EncodeError> {
    expr(w, "meta", |w| {
        w.attr(2, &be(key))?; // NFTA_META_KEY
        w.attr(1, &be(dreg)) // NFTA_META_DREG
    })
}

fn payload(
    w: &mut Writer<'_>,
    dreg: u32,
    base: u32,
    offset: u32,
    len: u32,
) -> Result<(), EncodeError> {
    expr(w, "payload", |w| {
        w.attr(1, &be(dreg))?; // NFTA_PAYLOAD_DREG
        w.attr(2, &be(base))?; // NFTA_PAYLOAD_BASE
        w.attr(3, &be(offset))?; // NFTA_PAYLOAD_OFFSET
        w.attr(4, &be(len)) // NFTA_PAYLOAD_LEN
    })
}

fn cmp(w: &mut Writer<'_>, op: u32, value: &[u8]) -> Result<(), EncodeError> {
    expr(w, "cmp", |w| {
        w.attr(1, &be(REG_1))?; // NFTA_CMP_SREG
        w.attr(2, &be(op))?; // NFTA_CMP_OP
        data_value(w, 3, value) // NFTA_CMP_DATA
    })
}

fn lookup(w: &mut Writer<'_>, set: &str, set_id: u32) -> Result<(), EncodeError> {
    expr(w, "lookup", |w| {
        w.attr(2, &be(REG_1))?; // NFTA_LOOKUP_SREG
        w.attr_name(1, set, NAME_MAX)?; // NFTA_LOOKUP_SET
        w.attr(4, &be(set_id)) // NFTA_LOOKUP_SET_ID
    })
}

/// `!= @set`: a lookup that matches when the key is absent.
fn lookup_absent(w: &mut Writer<'_>, set: &str, set_id: u32) -> Result<(), EncodeError> {
    expr(w, "lookup", |w| {
        w.attr(2, &be(REG_1))?; // NFTA_LOOKUP_SREG
        w.attr_name(1, set, NAME_MAX)?; // NFTA_LOOKUP_SET
        w.attr(4, &be(set_id))?; // NFTA_LOOKUP_SET_ID
        w.attr(5, &be(NFT_LOOKUP_F_INV)) // NFTA_LOOKUP_FLAGS
    })
}

/// `reject` of the given type and ICMP code.
fn reject(w: &mut Writer<'_>, ty: u32, code: u8) -> Result<(), EncodeError> {
    expr(w, "reject", |w| {
        w.attr(1, &be(ty))?; // NFTA_REJECT_TYPE
        w.attr(2, &[code]) // NFTA_REJECT_ICMP_CODE
    })
}

/// `meta l4proto . th dport @guard` (the start of both refusing rules).
fn guarded_port(w: &mut Writer<'_>, guard_id: u32) -> Result<(), EncodeError> {
    meta(w, NFT_META_L4PROTO, REG_1)?;
    payload(w, REG32_01, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)?;
    lookup(w, GUARD_SET, guard_id)
}

fn verdict(w: &mut Writer<'_>, code: u32) -> Result<(), EncodeError> {
    expr(w, "immediate", |w| {
        w.attr(1, &be(REG_VERDICT))?; // NFTA_IMMEDIATE_DREG
        let data = w.begin_nest(2)?; // NFTA_IMMEDIATE_DATA
        let v = w.begin_nest(NFTA_DATA_VERDICT)?;
        w.attr(NFTA_VERDICT_CODE, &be(code))?;
        w.end_nest(v)?;
        w.end_nest(data)
    })
}

fn new_table(w: &mut Writer<'_>, table: &str, seq: u32) -> Result<(), EncodeError> {
    let m = w.begin_msg(
        nft_type(NFT_MSG_NEWTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_TABLE_NAME, table, NAME_MAX)?;
    w.attr(NFTA_TABLE_FLAGS, &be(0))?;
    w.end_msg(m)
}

#[allow(clippy::too_many_arguments)]
fn new_set(
    w: &mut Writer<'_>,
    table: &str,
    set: &str,
    flags: u32,
    key_type: u32,
    key_len: u32,
    id: u32,
    userdata: &[u8],
    seq: u32,
) -> Result<(), EncodeError> {
    let m = w.begin_msg(
        nft_type(NFT_MSG_NEWSET),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_SET_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_SET_NAME, set, NAME_MAX)?;
    w.attr(NFTA_SET_FLAGS, &be(flags))?;
    w.attr(NFTA_SET_KEY_TYPE, &be(key_type))?;
    w.attr(NFTA_SET_KEY_LEN, &be(key_len))?;
    w.attr(NFTA_SET_ID, &be(id))?;
    w.attr(NFTA_SET_USERDATA, userdata)?;
    w.end_msg(m)
}

/// Starts a rule message in the standalone chain; returns (message, expressions) starts.
fn begin_rule(w: &mut Writer<'_>, table: &str, seq: u32) -> Result<(usize, usize), EncodeError> {
    let m = w.begin_msg(
        nft_type(NFT_MSG_NEWRULE),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_RULE_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_RULE_CHAIN, STANDALONE_CHAIN, NAME_MAX)?;
    Ok((m, w.begin_nest(NFTA_RULE_EXPRESSIONS)?))
}

fn end_rule(w: &mut Writer<'_>, (m, exprs): (usize, usize)) -> Result<(), EncodeError> {
    w.end_nest(exprs)?;
    w.end_msg(m)
}

/// Writes the batch that creates or updates `table inet <table>` in one
/// transaction, as [`super::ruleset::standalone_setup_script`] does: add table,
/// the `guard`/`allow4`/`allow6` sets, the `ban4`/`ban6` network sets and the
/// input chain (existing ones are kept, so live grants and bans survive),
/// flush and refill the guard set (`guarded`, sorted, duplicates dropped),
/// flush the chain and append its five rules.
pub fn setup(
    table: &str,
    guarded: &[PortSpec],
    seq: u32,
    buf: &mut [u8],
) -> Result<Batch, EncodeError> {
    let mut ports = guarded.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let mut s = Seq(seq);
    let mut w = Writer::new(buf);
    batch_marker(&mut w, NFNL_MSG_BATCH_BEGIN, s.next())?;
    let first_ack = s.0;

    new_table(&mut w, table, s.next())?;
    const GUARD_ID: u32 = 1;
    const ALLOW4_ID: u32 = 2;
    const ALLOW6_ID: u32 = 3;
    const BAN4_ID: u32 = 4;
    const BAN6_ID: u32 = 5;
    let concat = set_userdata();
    let addr = addr_set_userdata();
    let t = NFT_SET_TIMEOUT;
    let ti = NFT_SET_INTERVAL | NFT_SET_TIMEOUT;
    for (set, flags, key, len, id, udata) in [
        (GUARD_SET, 0, KEY_PROTO_SERVICE, 8, GUARD_ID, &concat[..]),
        (
            STANDALONE_ALLOW4,
            t,
            KEY_V4_PROTO_SERVICE,
            12,
            ALLOW4_ID,
            &concat,
        ),
        (
            STANDALONE_ALLOW6,
            t,
            KEY_V6_PROTO_SERVICE,
            24,
            ALLOW6_ID,
            &concat,
        ),
        (STANDALONE_BAN4, ti, KEY_V4, 4, BAN4_ID, &addr),
        (STANDALONE_BAN6, ti, KEY_V6, 16, BAN6_ID, &addr),
    ] {
        new_set(&mut w, table, set, flags, key, len, id, udata, s.next())?;
    }

    let m = w.begin_msg(
        nft_type(NFT_MSG_NEWCHAIN),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        s.next(),
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_CHAIN_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_CHAIN_NAME, STANDALONE_CHAIN, NAME_MAX)?;
    w.attr_name(NFTA_CHAIN_TYPE, "filter", NAME_MAX)?;
    w.attr(NFTA_CHAIN_POLICY, &be(NF_ACCEPT))?;
    let hook = w.begin_nest(NFTA_CHAIN_HOOK)?;
    w.attr(NFTA_HOOK_HOOKNUM, &be(NF_INET_LOCAL_IN))?;
    w.attr(NFTA_HOOK_PRIORITY, &CHAIN_PRIORITY.to_be_bytes())?;
    w.end_nest(hook)?;
    w.end_msg(m)?;

    // flush set: DELSETELEM without elements.
    let m = w.begin_msg(
        nft_type(NFT_MSG_DELSETELEM),
        NLM_F_REQUEST | NLM_F_ACK,
        s.next(),
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_SET_ELEM_LIST_SET, GUARD_SET, NAME_MAX)?;
    w.attr_name(NFTA_SET_ELEM_LIST_TABLE, table, NAME_MAX)?;
    w.end_msg(m)?;

    if !ports.is_empty() {
        let m = w.begin_msg(
            nft_type(NFT_MSG_NEWSETELEM),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            s.next(),
            NFPROTO_INET,
            0,
        )?;
        w.attr_name(NFTA_SET_ELEM_LIST_TABLE, table, NAME_MAX)?;
        w.attr_name(NFTA_SET_ELEM_LIST_SET, GUARD_SET, NAME_MAX)?;
        w.attr(NFTA_SET_ELEM_LIST_SET_ID, &be(GUARD_ID))?;
        let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)?;
        for (i, p) in ports.iter().enumerate() {
            // nft numbers list entries 1, 2, …; the kernel ignores the number.
            // (The nest's u16 length runs out long before the number's 14 bits.)
            let n = u16::try_from(i + 1).map_err(|_| EncodeError::BufferTooSmall)?;
            let elem = w.begin_nest(n & 0x3fff)?;
            let mut key = [0u8; 8];
            key[0] = p.proto.number();
            key[4..6].copy_from_slice(&p.port.to_be_bytes());
            data_value(&mut w, NFTA_SET_ELEM_KEY, &key)?;
            w.end_nest(elem)?;
        }
        w.end_nest(elements)?;
        w.end_msg(m)?;
    }

    // flush chain: DELRULE with only the chain.
    let m = w.begin_msg(
        nft_type(NFT_MSG_DELRULE),
        NLM_F_REQUEST | NLM_F_ACK,
        s.next(),
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_RULE_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_RULE_CHAIN, STANDALONE_CHAIN, NAME_MAX)?;
    w.end_msg(m)?;

    // ct state established,related accept
    let r = begin_rule(&mut w, table, s.next())?;
    expr(&mut w, "ct", |w| {
        w.attr(2, &be(NFT_CT_STATE))?; // NFTA_CT_KEY
        w.attr(1, &be(REG_1)) // NFTA_CT_DREG
    })?;
    expr(&mut w, "bitwise", |w| {
        w.attr(1, &be(REG_1))?; // NFTA_BITWISE_SREG
        w.attr(2, &be(REG_1))?; // NFTA_BITWISE_DREG
        w.attr(3, &be(4))?; // NFTA_BITWISE_LEN
        data_value(w, 4, &CT_STATE_ESTABLISHED_RELATED.to_ne_bytes())?; // MASK
        data_value(w, 5, &0u32.to_ne_bytes()) // XOR
    })?;
    cmp(&mut w, NFT_CMP_NEQ, &0u32.to_ne_bytes())?;
    verdict(&mut w, NF_ACCEPT)?;
    end_rule(&mut w, r)?;

    // meta nfproto ipv4 ip saddr . meta l4proto . th dport @allow4 ip saddr != @ban4 accept
    let r = begin_rule(&mut w, table, s.next())?;
    meta(&mut w, NFT_META_NFPROTO, REG_1)?;
    cmp(&mut w, NFT_CMP_EQ, &[NFPROTO_IPV4])?;
    payload(&mut w, REG_1, NFT_PAYLOAD_NETWORK_HEADER, 12, 4)?;
    meta(&mut w, NFT_META_L4PROTO, REG32_01)?;
    payload(&mut w, REG32_02, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)?;
    lookup(&mut w, STANDALONE_ALLOW4, ALLOW4_ID)?;
    payload(&mut w, REG_1, NFT_PAYLOAD_NETWORK_HEADER, 12, 4)?;
    lookup_absent(&mut w, STANDALONE_BAN4, BAN4_ID)?;
    verdict(&mut w, NF_ACCEPT)?;
    end_rule(&mut w, r)?;

    // meta nfproto ipv6 ip6 saddr . meta l4proto . th dport @allow6 ip6 saddr != @ban6 accept
    let r = begin_rule(&mut w, table, s.next())?;
    meta(&mut w, NFT_META_NFPROTO, REG_1)?;
    cmp(&mut w, NFT_CMP_EQ, &[NFPROTO_IPV6])?;
    payload(&mut w, REG_1, NFT_PAYLOAD_NETWORK_HEADER, 8, 16)?;
    meta(&mut w, NFT_META_L4PROTO, REG_2)?;
    payload(&mut w, REG32_05, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2)?;
    lookup(&mut w, STANDALONE_ALLOW6, ALLOW6_ID)?;
    payload(&mut w, REG_1, NFT_PAYLOAD_NETWORK_HEADER, 8, 16)?;
    lookup_absent(&mut w, STANDALONE_BAN6, BAN6_ID)?;
    verdict(&mut w, NF_ACCEPT)?;
    end_rule(&mut w, r)?;

    // meta l4proto . th dport @guard meta l4proto tcp reject with tcp reset
    let r = begin_rule(&mut w, table, s.next())?;
    guarded_port(&mut w, GUARD_ID)?;
    meta(&mut w, NFT_META_L4PROTO, REG_1)?;
    cmp(&mut w, NFT_CMP_EQ, &[IPPROTO_TCP])?;
    reject(&mut w, NFT_REJECT_TCP_RST, 0)?;
    end_rule(&mut w, r)?;

    // meta l4proto . th dport @guard reject
    let r = begin_rule(&mut w, table, s.next())?;
    guarded_port(&mut w, GUARD_ID)?;
    reject(
        &mut w,
        NFT_REJECT_ICMPX_UNREACH,
        NFT_REJECT_ICMPX_PORT_UNREACH,
    )?;
    end_rule(&mut w, r)?;

    let last_ack = s.0.wrapping_sub(1);
    batch_marker(&mut w, NFNL_MSG_BATCH_END, s.next())?;
    Ok(Batch {
        len: w.len(),
        first_ack,
        last_ack,
    })
}

/// Writes the batch that removes `table inet <table>`; adding it first makes
/// the delete succeed when it is already gone (as `nft` 1.0.6 has no `destroy`).
pub fn teardown(table: &str, seq: u32, buf: &mut [u8]) -> Result<Batch, EncodeError> {
    let mut s = Seq(seq);
    let mut w = Writer::new(buf);
    batch_marker(&mut w, NFNL_MSG_BATCH_BEGIN, s.next())?;
    let first_ack = s.0;
    new_table(&mut w, table, s.next())?;
    let m = w.begin_msg(
        nft_type(NFT_MSG_DELTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        s.next(),
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_TABLE_NAME, table, NAME_MAX)?;
    w.end_msg(m)?;
    let last_ack = s.0.wrapping_sub(1);
    batch_marker(&mut w, NFNL_MSG_BATCH_END, s.next())?;
    Ok(Batch {
        len: w.len(),
        first_ack,
        last_ack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nft's captured batch (little-endian) turned into this host's byte
    /// order, with `NLM_F_ACK` added to every message between the markers.
    fn nft_capture_in_host_order() -> Vec<u8> {
        let hex: String = include_str!("testdata/nft-1.0.6-setup.hex")
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let mut b: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let le16 = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        // Swap every nlattr header of the attributes in b[from..to], recursing
        // into nested ones; the host-order values inside payloads too: the
        // ct-state mask and the u32 in the sets' user data.
        fn attrs(b: &mut [u8], from: usize, to: usize) {
            let mut at = from;
            while at + 4 <= to {
                let len = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
                let ty = u16::from_le_bytes([b[at + 2], b[at + 3]]);
                b[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
                b[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
                if ty & 0x8000 != 0 {
                    attrs(b, at + 4, at + len);
                } else if len == 8 && b[at + 4..at + 8] == [6, 0, 0, 0] {
                    b[at + 4..at + 8].copy_from_slice(&6u32.to_ne_bytes());
                } else if ty == NFTA_SET_USERDATA && len == 20 {
                    b[at + 14..at + 18].copy_from_slice(&13u32.to_ne_bytes());
                } else if ty == NFTA_SET_USERDATA && len == 10 {
                    b[at + 6..at + 10].copy_from_slice(&2u32.to_ne_bytes());
                }
                at += (len + 3) & !3;
            }
        }
        let mut at = 0;
        let n = b.len();
        while at < n {
            let len = le32(&b, at) as usize;
            let ty = le16(&b, at + 4);
            let mut flags = le16(&b, at + 6);
            let seq = le32(&b, at + 8);
            if ty != NFNL_MSG_BATCH_BEGIN && ty != NFNL_MSG_BATCH_END {
                flags |= NLM_F_ACK;
            }
            b[at..at + 4].copy_from_slice(&(len as u32).to_ne_bytes());
            b[at + 4..at + 6].copy_from_slice(&ty.to_ne_bytes());
            b[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
            b[at + 8..at + 12].copy_from_slice(&seq.to_ne_bytes());
            attrs(&mut b, at + 20, at + len);
            at += (len + 3) & !3;
        }
        b
    }

    #[test]
    fn setup_is_nfts_batch_byte_for_byte() {
        let expected = nft_capture_in_host_order();
        assert_eq!(expected.len(), 2516);
        let guard = [PortSpec::udp(53), PortSpec::tcp(22), PortSpec::udp(53)];
        let mut buf = vec![0u8; setup_buf_len(guard.len())];
        let batch = setup("postern", &guard, 0, &mut buf).unwrap();
        assert_eq!(
            (batch.first_ack, batch.last_ack, batch.len),
            (1, 15, expected.len())
        );
        // Compare message by message for a readable failure.
        let got = &buf[..batch.len];
        let mut at = 0;
        while at < expected.len() {
            let len = u32::from_ne_bytes(expected[at..at + 4].try_into().unwrap()) as usize;
            let end = at + ((len + 3) & !3);
            assert_eq!(
                &got[at..end.min(got.len())],
                &expected[at..end],
                "message at byte {at}"
            );
            at = end;
        }
        assert_eq!(got, &expected[..]);
    }

    #[test]
    fn setup_without_guarded_ports_skips_the_element_message() {
        let mut buf = vec![0u8; setup_buf_len(0)];
        let b = setup("postern", &[], 100, &mut buf).unwrap();
        // begin, table, 5 sets, chain, flush set, flush chain, 5 rules, end.
        assert_eq!((b.first_ack, b.last_ack), (101, 114));
        assert_eq!(b.len, 2516 - 96);
        // Sequence numbers wrap.
        let b = setup("postern", &[PortSpec::tcp(1)], u32::MAX, &mut buf).unwrap();
        assert_eq!((b.first_ack, b.last_ack), (0, 14));
    }

    #[test]
    fn teardown_bytes() {
        let h16 = |v: u16| v.to_ne_bytes();
        let h32 = |v: u32| v.to_ne_bytes();
        let expected = [
            &h32(20)[..],
            &h16(0x10),
            &h16(1),
            &h32(7),
            &h32(0),
            &[0, 0, 0, 10],
            &h32(40),
            &h16(0x0a00),
            &h16(5),
            &h32(8),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(12),
            &h16(1),
            b"postern\0",
            &h16(8),
            &h16(2),
            &[0, 0, 0, 0],
            &h32(32),
            &h16(0x0a02),
            &h16(5),
            &h32(9),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(12),
            &h16(1),
            b"postern\0",
            &h32(20),
            &h16(0x11),
            &h16(1),
            &h32(10),
            &h32(0),
            &[0, 0, 0, 10],
        ]
        .concat();
        let mut buf = [0u8; 256];
        let b = teardown("postern", 7, &mut buf).unwrap();
        assert_eq!((b.first_ack, b.last_ack), (8, 9));
        assert_eq!(&buf[..b.len], &expected[..]);
    }

    #[test]
    fn small_buffers_and_bad_names_are_errors() {
        let guard = [PortSpec::tcp(22)];
        for n in [0, 19, 20, 100, 1000, 1700, 2400] {
            let mut buf = vec![0u8; n];
            assert_eq!(
                setup("postern", &guard, 0, &mut buf),
                Err(EncodeError::BufferTooSmall),
                "{n}"
            );
        }
        let mut buf = vec![0u8; setup_buf_len(1)];
        assert_eq!(setup("", &guard, 0, &mut buf), Err(EncodeError::BadName));
        assert_eq!(teardown("a\0b", 0, &mut buf), Err(EncodeError::BadName));
        // Many guarded ports still fit the advertised size.
        let many: Vec<PortSpec> = (1..=2000).map(PortSpec::tcp).collect();
        let mut buf = vec![0u8; setup_buf_len(many.len())];
        assert!(setup("postern", &many, 0, &mut buf).is_ok());
    }
}
