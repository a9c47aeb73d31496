//! Classic BPF programs that let only knock/SPA packets reach user space.
//!
//! Owns the builder of the in-kernel filter for `SOCK_DGRAM` packet sockets
//! (offset 0 is the IP header). Pure: no syscalls; the [`super::Capture`]
//! socket attaches the result. The filter is an optimisation, not a security
//! boundary: [`crate::wire::observe`] checks every frame again.
//!
//! Program shape (`ret #0` drops, `ret #SNAP` accepts the whole packet).
//! IPv4 and IPv6 come bare (offset 0) or inside a PPPoE session (capturing on
//! the Ethernet under a PPPoE link: the IP packet at 8); X holds where the IP
//! header starts, then where the transport header starts, so one block of
//! port tests serves every family and framing:
//!
//! ```text
//!       ldh  [skb->pkt_type]            ; ancillary load
//!       jeq  #PACKET_OTHERHOST → ret #0 ; for another host (promiscuous, bridged)
//!       ldh  [skb->protocol]            ; ancillary load
//!       jeq  #0x0800 → ldx #0, ja v4    ; far targets are reached by `ja`, whose
//!       jeq  #0x86dd → ldx #0, ja v6    ; offset is 32 bits: every conditional
//!       jeq  #0x8864 else ret #0        ; jump skips at most 2 (≤ 255 always)
//!       ldh  [0] == 0x1100 (PPPoE v1 type 1, session data), ldx #8,
//!       ldh  [6] (PPP protocol): 0x0021 → ja v4, 0x0057 → ja v6, else ret #0
//! v4:   version nibble at [x] == 4, frag offset == 0 and MF clear,
//!       M[0] = x + IHL*4, A = protocol [x+9], X = M[0], ja l4
//! v6:   version nibble at [x] == 6, M[0] = x + 40, A = next header [x+6], X = M[0]
//! l4:   A → tcp / udp blocks, else ret #0
//! tcp:  [SYN without ACK at x+13], ldh [x+2]; per port: jeq #p, ret #SNAP;
//!       per range: jge #first (else skip 2), jgt #last (then skip 1), ret #SNAP; ret #0
//! udp:  ldh [x+2]; the same port and range tests; ret #0
//! ```
//!
//! Loads past the end of a packet make the kernel return 0 (drop), so short
//! packets are dropped without explicit length checks.

use crate::port::{L4Proto, PortRange, PortSpec};

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode (class | size | mode, or class | op | source).
    pub code: u16,
    /// Jump offset if the condition is true.
    pub jt: u8,
    /// Jump offset if the condition is false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

static_assertions::assert_eq_size!(SockFilter, libc::sock_filter);
static_assertions::assert_eq_align!(SockFilter, libc::sock_filter);

/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// What an accepting program returns: the number of bytes to keep, more than
/// any packet.
pub const SNAP_LEN: u32 = 0x4_0000;

/// The opcodes [`build`] emits (values from `linux/filter.h`).
pub mod op {
    /// `ldh [k]`: A = 16-bit big-endian load at absolute offset k.
    pub const LDH_ABS: u16 = 0x28;
    /// `ldb [k]`: A = byte at absolute offset k.
    pub const LDB_ABS: u16 = 0x30;
    /// `ldh [x + k]`: A = 16-bit load at offset X + k.
    pub const LDH_IND: u16 = 0x48;
    /// `ldb [x + k]`: A = byte at offset X + k.
    pub const LDB_IND: u16 = 0x50;
    /// `ldxb 4 * ([k] & 0xf)`: X = IPv4 header length.
    pub const LDXB_MSH: u16 = 0xb1;
    /// `and #k`: A &= k.
    pub const AND_K: u16 = 0x54;
    /// `ja k`: jump k instructions forward unconditionally (32-bit offset).
    pub const JA: u16 = 0x05;
    /// `jeq #k, jt, jf`.
    pub const JEQ_K: u16 = 0x15;
    /// `jgt #k, jt, jf`: true when A > k.
    pub const JGT_K: u16 = 0x25;
    /// `jge #k, jt, jf`: true when A >= k.
    pub const JGE_K: u16 = 0x35;
    /// `jset #k, jt, jf`: true when A & k != 0.
    pub const JSET_K: u16 = 0x45;
    /// `ldx #k`: X = k.
    pub const LDX_IMM: u16 = 0x01;
    /// `ldx M[k]`: X = scratch memory slot k.
    pub const LDX_MEM: u16 = 0x61;
    /// `st M[k]`: scratch memory slot k = A.
    pub const ST: u16 = 0x02;
    /// `lsh #k`: A <<= k.
    pub const LSH_K: u16 = 0x64;
    /// `add #k`: A += k.
    pub const ADD_K: u16 = 0x04;
    /// `add x`: A += X.
    pub const ADD_X: u16 = 0x0c;
    /// `txa`: A = X.
    pub const TXA: u16 = 0x87;
    /// `ret #k`: accept k bytes (0 = drop).
    pub const RET_K: u16 = 0x06;
}

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: ancillary load of `skb->protocol`
/// (the EtherType, host order after the load, like any `ldh`).
pub const AD_PROTOCOL: u32 = (-0x1000i32) as u32;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: ancillary load of `skb->pkt_type`
/// (`PACKET_HOST`, `PACKET_OTHERHOST`, …). The kernel serves ancillary loads
/// whatever the load size; `ldh` keeps the opcode set small.
pub const AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;

/// `PACKET_OTHERHOST`: a frame addressed to another link-layer address, seen
/// only because the device is promiscuous (a bridge port, a sniffer, a
/// promiscuous WAN). Never for this host: the filter drops it.
pub const PACKET_OTHERHOST: u32 = 3;

/// EtherType of IPv4.
const ETH_P_IP: u32 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u32 = 0x86dd;
/// EtherType of PPPoE session frames.
pub const ETH_P_PPP_SES: u32 = 0x8864;
/// The first 16 bits of a PPPoE session header: version 1, type 1, code 0.
const PPPOE_SESSION: u32 = 0x1100;
/// Bytes before the IP packet in a PPPoE session frame: the PPPoE header (6)
/// and the PPP protocol (2).
pub const PPPOE_HEADER: u32 = 8;
/// PPP protocol numbers of IPv4 and IPv6.
const PPP_IP: u32 = 0x0021;
const PPP_IPV6: u32 = 0x0057;

/// A jump target resolved when the program is finished.
#[derive(Clone, Copy)]
struct Label(usize);

/// A tiny assembler: conditional jumps only skip 0 or 1 instruction; far
/// jumps use `ja`, patched when labels are bound.
struct Asm {
    insns: Vec<SockFilter>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn new() -> Asm {
        Asm {
            insns: Vec::new(),
            labels: Vec::new(),
            fixups: Vec::new(),
        }
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(SockFilter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: u8, jf: u8) {
        self.insns.push(SockFilter { code, jt, jf, k });
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    fn ja(&mut self, l: Label) {
        self.fixups.push((self.insns.len(), l));
        self.stmt(op::JA, 0);
    }

    /// `if A == k { goto l }`, with `l` anywhere forward.
    fn jeq_far(&mut self, k: u32, l: Label) {
        self.jump(op::JEQ_K, k, 0, 1);
        self.ja(l);
    }

    /// `if A == k { X = x; goto l }`, with `l` anywhere forward.
    fn jeq_far_with_x(&mut self, k: u32, x: u32, l: Label) {
        self.jump(op::JEQ_K, k, 0, 2);
        self.stmt(op::LDX_IMM, x);
        self.ja(l);
    }

    /// `if A == k { drop }`.
    fn reject_eq(&mut self, k: u32) {
        self.jump(op::JEQ_K, k, 0, 1);
        self.stmt(op::RET_K, 0);
    }

    /// `if A != k { drop }`.
    fn require_eq(&mut self, k: u32) {
        self.jump(op::JEQ_K, k, 1, 0);
        self.stmt(op::RET_K, 0);
    }

    fn finish(mut self) -> Vec<SockFilter> {
        for (at, l) in self.fixups {
            // Labels are bound before `finish`, always after their jumps.
            if let Some(target) = self.labels[l.0] {
                self.insns[at].k = target.saturating_sub(at + 1) as u32;
            }
        }
        self.insns
    }
}

/// Builds the filter for `SOCK_DGRAM` frames: drops frames for another host
/// (`PACKET_OTHERHOST`), then accepts unfragmented IPv4 and IPv6 packets
/// (transport header directly after the fixed header), bare or in a PPPoE
/// session frame, whose protocol and destination port are in `ports`; with
/// `tcp_syn_only`, TCP packets only when they are connection openings (SYN
/// set, ACK clear). Everything else is dropped; an empty list drops everything.
///
/// Duplicates in `ports` are ignored. The program grows by two instructions
/// per distinct port (plus about 50 in all), so about 2000 ports fit in the
/// kernel's limit, [`MAX_INSNS`]; [`super::Capture`] refuses longer programs
/// with an error.
pub fn build(ports: &[PortSpec], tcp_syn_only: bool) -> Vec<SockFilter> {
    let ranges: Vec<PortRange> = ports.iter().map(|p| PortRange::single(*p)).collect();
    build_ranges(&ranges, tcp_syn_only)
}

/// [`build`] for port ranges: a single port costs two instructions, a range
/// of any size three (`jge`, `jgt`, `ret`; every conditional jump skips at
/// most two). Overlapping and adjacent ranges are merged first, so a
/// 512-port knock range costs as much as one port.
pub fn build_ranges(ranges: &[PortRange], tcp_syn_only: bool) -> Vec<SockFilter> {
    let tcp = select(ranges, L4Proto::Tcp);
    let udp = select(ranges, L4Proto::Udp);

    let mut a = Asm::new();
    if tcp.is_empty() && udp.is_empty() {
        a.stmt(op::RET_K, 0);
        return a.finish();
    }
    let (v4, v6, l4) = (a.label(), a.label(), a.label());
    // Frames for another link-layer address (a promiscuous or bridged WAN)
    // are not for this host: they cost nothing in user space and are never
    // judged, counted or granted on.
    a.stmt(op::LDH_ABS, AD_PKTTYPE);
    a.reject_eq(PACKET_OTHERHOST);
    a.stmt(op::LDH_ABS, AD_PROTOCOL);
    a.jeq_far_with_x(ETH_P_IP, 0, v4);
    a.jeq_far_with_x(ETH_P_IPV6, 0, v6);
    // A PPPoE session frame (capturing on the Ethernet under a PPPoE link):
    // the IP packet starts after the PPPoE header and the PPP protocol.
    a.require_eq(ETH_P_PPP_SES);
    a.stmt(op::LDH_ABS, 0);
    a.require_eq(PPPOE_SESSION);
    a.stmt(op::LDX_IMM, PPPOE_HEADER);
    a.stmt(op::LDH_ABS, PPPOE_HEADER - 2);
    a.jeq_far(PPP_IP, v4);
    a.jeq_far(PPP_IPV6, v6);
    a.stmt(op::RET_K, 0);

    // IPv4 at X: version, no fragment, then A = protocol, X = transport header.
    a.bind(v4);
    a.stmt(op::LDB_IND, 0);
    a.stmt(op::AND_K, 0xf0);
    a.require_eq(0x40);
    a.stmt(op::LDH_IND, 6);
    a.jump(op::JSET_K, 0x3fff, 0, 1); // MF or a fragment offset
    a.stmt(op::RET_K, 0);
    a.stmt(op::LDB_IND, 0);
    a.stmt(op::AND_K, 0x0f);
    a.stmt(op::LSH_K, 2);
    a.stmt(op::ADD_X, 0);
    a.stmt(op::ST, 0);
    a.stmt(op::LDB_IND, 9);
    a.stmt(op::LDX_MEM, 0);
    a.ja(l4);

    // IPv6 at X: the transport header is 40 bytes on.
    a.bind(v6);
    a.stmt(op::LDB_IND, 0);
    a.stmt(op::AND_K, 0xf0);
    a.require_eq(0x60);
    a.stmt(op::TXA, 0);
    a.stmt(op::ADD_K, 40);
    a.stmt(op::ST, 0);
    a.stmt(op::LDB_IND, 6);
    a.stmt(op::LDX_MEM, 0);

    a.bind(l4);
    transports(&mut a, &tcp, &udp, tcp_syn_only);
    a.finish()
}

/// Ranges of one protocol as `(first, last)`, sorted, overlapping and adjacent ones merged.
fn select(ranges: &[PortRange], proto: L4Proto) -> Vec<(u16, u16)> {
    let mut v: Vec<(u16, u16)> = ranges
        .iter()
        .filter(|r| r.proto == proto && r.first <= r.last)
        .map(|r| (r.first, r.last))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
    for (first, last) in v {
        match out.last_mut() {
            Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    out
}

/// With A = IP protocol and X = the transport header's offset: dispatches
/// to the TCP and UDP port blocks.
fn transports(a: &mut Asm, tcp: &[(u16, u16)], udp: &[(u16, u16)], tcp_syn_only: bool) {
    let (tcp_l, udp_l) = (a.label(), a.label());
    if !tcp.is_empty() {
        a.jeq_far(6, tcp_l);
    }
    if !udp.is_empty() {
        a.jeq_far(17, udp_l);
    }
    a.stmt(op::RET_K, 0);
    if !tcp.is_empty() {
        a.bind(tcp_l);
        if tcp_syn_only {
            a.stmt(op::LDB_IND, 13); // TCP flags
            a.stmt(op::AND_K, 0x12); // SYN | ACK
            a.require_eq(0x02);
        }
        ports_block(a, tcp);
    }
    if !udp.is_empty() {
        a.bind(udp_l);
        ports_block(a, udp);
    }
}

/// Loads the destination port, then one accept per port or range.
fn ports_block(a: &mut Asm, ranges: &[(u16, u16)]) {
    a.stmt(op::LDH_IND, 2);
    for &(first, last) in ranges {
        if first == last {
            a.jump(op::JEQ_K, u32::from(first), 0, 1);
        } else {
            a.jump(op::JGE_K, u32::from(first), 0, 2);
            a.jump(op::JGT_K, u32::from(last), 1, 0);
        }
        a.stmt(op::RET_K, SNAP_LEN);
    }
    a.stmt(op::RET_K, 0);
}

#[cfg(test)]
mod tests;
