//! The filter run by a small classic-BPF interpreter (only the opcodes
//! [`build`] emits) over the `wire` test frames; the kernel run is in the
//! root-only namespace test of `capture`.

use super::*;
use crate::port::L4Proto;
use crate::wire::testdata::*;

const IP: u16 = 0x0800;
const IP6: u16 = 0x86dd;

/// What the kernel's verifier checks that matters here: known opcodes, jumps
/// inside the program, a `ret` at the end, the size limit.
fn validate(prog: &[SockFilter]) {
    assert!(
        !prog.is_empty() && prog.len() <= MAX_INSNS,
        "{} insns",
        prog.len()
    );
    assert_eq!(prog.last().unwrap().code, op::RET_K);
    for (pc, i) in prog.iter().enumerate() {
        let targets: Vec<usize> = match i.code {
            op::JA => vec![pc + 1 + i.k as usize],
            op::JEQ_K | op::JSET_K | op::JGE_K | op::JGT_K => {
                vec![pc + 1 + i.jt as usize, pc + 1 + i.jf as usize]
            }
            op::LDH_ABS | op::LDB_ABS | op::LDH_IND | op::LDB_IND | op::LDXB_MSH => vec![],
            op::AND_K | op::RET_K | op::LDX_IMM | op::LDX_MEM | op::ST => vec![],
            op::LSH_K | op::ADD_K | op::ADD_X | op::TXA => vec![],
            c => panic!("unknown opcode {c:#x} at {pc}"),
        };
        for t in targets {
            assert!(t < prog.len(), "jump from {pc} to {t} past the end");
        }
    }
}

/// `PACKET_HOST`: a frame addressed to this host.
const PACKET_HOST: u32 = 0;

/// Runs `prog` over `pkt` (offset 0 = IP header) as the kernel would, with
/// `proto` as `skb->protocol`, for this host. Returns the accepted length (0 = drop).
fn run(prog: &[SockFilter], pkt: &[u8], proto: u16) -> u32 {
    run_as(prog, pkt, proto, PACKET_HOST)
}

/// [`run`] with `pkt_type` as `skb->pkt_type`.
fn run_as(prog: &[SockFilter], pkt: &[u8], proto: u16, pkt_type: u32) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    // Scratch memory; the kernel's checker insists that a slot is stored
    // before it is loaded, so a read of an unset slot is a bug here.
    let mut mem: [Option<u32>; 16] = [None; 16];
    let byte = |off: u32| pkt.get(off as usize).map(|b| u32::from(*b));
    let half = |off: u32| {
        let o = off as usize;
        Some(u32::from(u16::from_be_bytes([
            *pkt.get(o)?,
            *pkt.get(o + 1)?,
        ])))
    };
    loop {
        let i = prog[pc];
        pc += 1;
        let load = match i.code {
            op::LDH_ABS if i.k == AD_PROTOCOL => Some(Some(u32::from(proto))),
            op::LDH_ABS if i.k == AD_PKTTYPE => Some(Some(pkt_type)),
            op::LDH_ABS => Some(half(i.k)),
            op::LDB_ABS => Some(byte(i.k)),
            op::LDH_IND => Some(half(x.wrapping_add(i.k))),
            op::LDB_IND => Some(byte(x.wrapping_add(i.k))),
            op::LDXB_MSH => {
                match byte(i.k) {
                    Some(b) => x = 4 * (b & 0xf),
                    None => return 0,
                }
                None
            }
            op::AND_K => {
                a &= i.k;
                None
            }
            op::LSH_K => {
                a <<= i.k;
                None
            }
            op::ADD_K => {
                a = a.wrapping_add(i.k);
                None
            }
            op::ADD_X => {
                a = a.wrapping_add(x);
                None
            }
            op::TXA => {
                a = x;
                None
            }
            op::LDX_IMM => {
                x = i.k;
                None
            }
            op::ST => {
                mem[i.k as usize] = Some(a);
                None
            }
            op::LDX_MEM => {
                x = mem[i.k as usize].expect("M[k] loaded before it was stored");
                None
            }
            op::JA => {
                pc += i.k as usize;
                None
            }
            op::JEQ_K => {
                pc += usize::from(if a == i.k { i.jt } else { i.jf });
                None
            }
            op::JSET_K => {
                pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf });
                None
            }
            op::JGE_K => {
                pc += usize::from(if a >= i.k { i.jt } else { i.jf });
                None
            }
            op::JGT_K => {
                pc += usize::from(if a > i.k { i.jt } else { i.jf });
                None
            }
            op::RET_K => return i.k,
            c => panic!("unknown opcode {c:#x}"),
        };
        match load {
            Some(Some(v)) => a = v,
            Some(None) => return 0, // load past the end: the kernel drops
            None => {}
        }
    }
}

fn accepts(prog: &[SockFilter], pkt: &[u8]) -> bool {
    let proto = if pkt.first().is_some_and(|b| b >> 4 == 6) {
        IP6
    } else {
        IP
    };
    run(prog, pkt, proto) == SNAP_LEN
}

fn knock_ports() -> [PortSpec; 3] {
    [PortSpec::tcp(22), PortSpec::udp(8000), PortSpec::tcp(2222)]
}

#[test]
fn accepts_listed_ports_v4_v6_tcp_udp() {
    let prog = build(&knock_ports(), true);
    validate(&prog);
    for f in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        assert!(accepts(&prog, f), "{f:02x?}");
    }
    assert!(accepts(&prog, &v4(6, &tcp(1, 2222, 0x02, b""))));
    assert!(accepts(&prog, &v6(6, &tcp(1, 2222, 0x02, b""))));
    // Trailing padding changes nothing.
    let mut padded = V4_UDP.to_vec();
    padded.resize(46, 0);
    assert!(accepts(&prog, &padded));
}

#[test]
fn drops_other_ports_and_protocols() {
    let prog = build(&knock_ports(), true);
    let others = [
        v4(6, &tcp(1, 23, 0x02, b"")),
        v4(6, &tcp(1, 8000, 0x02, b"")), // udp port, tcp packet
        v4(17, &udp(1, 22, b"x")),       // tcp port, udp packet
        v4(17, &udp(22, 8001, b"x")),    // source port is not looked at
        v6(6, &tcp(22, 21, 0x02, b"")),
        v6(17, &udp(8000, 7999, b"x")),
        v4(1, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]),
        v6(58, &[128, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for f in &others {
        assert_eq!(
            run(&prog, f, if f[0] >> 4 == 6 { IP6 } else { IP }),
            0,
            "{f:02x?}"
        );
    }
}

#[test]
fn tcp_syn_only_is_a_parameter() {
    let syn_only = build(&knock_ports(), true);
    let any = build(&knock_ports(), false);
    validate(&any);
    for flags in [0x12u8, 0x10, 0x04, 0x14, 0x11, 0x18] {
        for f in [
            v4(6, &tcp(1, 22, flags, b"")),
            v6(6, &tcp(1, 22, flags, b"")),
        ] {
            assert!(!accepts(&syn_only, &f), "flags {flags:#x}");
            assert!(accepts(&any, &f), "flags {flags:#x}");
        }
    }
    // SYN with other flags (ECN bits, even FIN) is still an opening.
    for flags in [0x02u8, 0xc2, 0x03] {
        assert!(accepts(&syn_only, &v4(6, &tcp(1, 22, flags, b""))));
    }
    // UDP is never affected.
    assert!(accepts(&syn_only, &V6_UDP));
}

#[test]
fn drops_fragments_and_extension_headers() {
    let prog = build(&knock_ports(), false);
    let mut mf = V4_UDP;
    mf[6] = 0x20;
    let mut offset = V4_UDP;
    offset[6..8].copy_from_slice(&[0x40, 0x01]);
    let mut offset_high = V4_TCP_SYN;
    offset_high[6..8].copy_from_slice(&[0x10, 0x00]);
    for f in [&mf[..], &offset, &offset_high] {
        assert!(!accepts(&prog, f), "{f:02x?}");
    }
    let mut l = vec![17, 0, 0, 0, 0, 0, 0, 1];
    l.extend_from_slice(&udp(1, 8000, b"x"));
    assert!(!accepts(&prog, &v6(44, &l)));
    assert!(!accepts(&prog, &v6(0, &l)));
    assert!(!accepts(&prog, &v6(60, &l)));
}

#[test]
fn ipv4_options_move_the_transport_header() {
    let prog = build(&[PortSpec::udp(8000)], true);
    let mut f = V4_UDP[..20].to_vec();
    f[0] = 0x48; // 12 bytes of options
    f.extend_from_slice(&[1; 8]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&udp(1, 8000, b"x"));
    assert!(accepts(&prog, &f));
    // The UDP header where IHL=5 would put it says port 0x0101: not 8000.
    f[0] = 0x45;
    assert!(!accepts(&prog, &f));
}

#[test]
fn frames_for_another_host_are_dropped_in_the_kernel() {
    // A promiscuous or bridged WAN hands the socket frames addressed to other
    // MACs (PACKET_OTHERHOST): an on-link attacker's knock to someone else's
    // MAC, or another host's traffic, must never count.
    let prog = build(&knock_ports(), true);
    for f in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        let proto = if f[0] >> 4 == 6 { IP6 } else { IP };
        assert_eq!(run_as(&prog, f, proto, PACKET_OTHERHOST), 0, "{f:02x?}");
        // Broadcast (1) and multicast (2) are still for this host.
        for for_us in [PACKET_HOST, 1, 2] {
            assert_eq!(run_as(&prog, f, proto, for_us), SNAP_LEN, "{f:02x?}");
        }
    }
}

/// `ip` in a PPPoE session frame as a `SOCK_DGRAM` socket on the Ethernet
/// delivers it: PPPoE header (version/type 0x11, code 0, session, length),
/// then the PPP protocol.
fn pppoe(ip: &[u8]) -> Vec<u8> {
    let ppp = if ip[0] >> 4 == 6 { 0x0057u16 } else { 0x0021 };
    let len = (ip.len() + 2) as u16;
    let mut f = vec![0x11, 0x00, 0x12, 0x34];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&ppp.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

const PPP_SES: u16 = 0x8864;

#[test]
fn accepts_the_same_packets_inside_pppoe_sessions() {
    // Capturing on the Ethernet under a PPPoE link (eth0.2 under pppoe-wan):
    // the packets are PPPoE session frames, and must be seen all the same.
    let prog = build(&knock_ports(), true);
    validate(&prog);
    for f in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        assert_eq!(run(&prog, &pppoe(f), PPP_SES), SNAP_LEN, "{f:02x?}");
        // Not as bare IP with the PPPoE EtherType, nor PPPoE as bare IP.
        assert_eq!(run(&prog, f, PPP_SES), 0, "{f:02x?}");
        assert_eq!(run(&prog, &pppoe(f), IP), 0, "{f:02x?}");
        assert_eq!(
            run_as(&prog, &pppoe(f), PPP_SES, PACKET_OTHERHOST),
            0,
            "{f:02x?}"
        );
    }
    // IPv4 options move the transport header inside PPPoE too.
    let mut opts = v4(17, &udp(1, 8000, b"x"));
    opts[0] = 0x46;
    opts.splice(20..20, [1u8, 1, 1, 1]);
    assert_eq!(run(&prog, &pppoe(&opts), PPP_SES), SNAP_LEN);
    // What the filter drops inside PPPoE as outside.
    let mut frag = V4_UDP.to_vec();
    frag[6] = 0x20; // MF
    for ip in [
        v4(6, &tcp(1, 23, 0x02, b"")),
        v4(6, &tcp(1, 22, 0x12, b"")), // SYN-ACK
        v6(17, &udp(8000, 7999, b"x")),
        frag,
    ] {
        assert_eq!(run(&prog, &pppoe(&ip), PPP_SES), 0, "{ip:02x?}");
    }
    // Not a session data frame of IP: discovery (PADT), another version,
    // LCP, compressed protocol field.
    let good = pppoe(&V4_UDP);
    let mut padt = good.clone();
    padt[1] = 0xa7;
    let mut version = good.clone();
    version[0] = 0x21;
    let mut lcp = good.clone();
    lcp[6..8].copy_from_slice(&[0xc0, 0x21]);
    let mut compressed = vec![0x11, 0, 0x12, 0x34, 0, 0x1d, 0x21];
    compressed.extend_from_slice(&V4_UDP);
    for f in [padt, version, lcp, compressed] {
        assert_eq!(run(&prog, &f, PPP_SES), 0, "{f:02x?}");
    }
    // Cut anywhere before the port (and TCP flags): dropped, no panic.
    let whole = pppoe(&V4_TCP_SYN);
    for len in 0..whole.len() {
        let want = if len >= 8 + 20 + 14 { SNAP_LEN } else { 0 };
        assert_eq!(run(&prog, &whole[..len], PPP_SES), want, "len {len}");
    }
}

#[test]
fn checks_the_ethertype_and_the_version() {
    let prog = build(&knock_ports(), true);
    assert_eq!(run(&prog, &V4_UDP, 0x0806), 0); // ARP
    assert_eq!(run(&prog, &V4_UDP, IP6), 0); // IPv4 bytes as IPv6
    assert_eq!(run(&prog, &V6_UDP, IP), 0);
    let mut f = V4_UDP;
    f[0] = 0x55;
    assert_eq!(run(&prog, &f, IP), 0);
}

#[test]
fn truncated_packets_are_dropped_without_panic() {
    let prog = build(&knock_ports(), true);
    for f in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        for len in 0..f.len() {
            let accepted = accepts(&prog, &f[..len]);
            // Accepted only once the port (and the TCP flags) are present.
            let ip = if f[0] >> 4 == 4 { 20 } else { 40 };
            let proto = if ip == 20 { f[9] } else { f[6] };
            let needed = ip + if proto == 6 { 14 } else { 4 };
            assert_eq!(accepted, len >= needed, "len {len} of {f:02x?}");
        }
    }
}

#[test]
fn empty_list_drops_everything() {
    for syn in [true, false] {
        let prog = build(&[], syn);
        validate(&prog);
        assert_eq!(
            prog,
            [SockFilter {
                code: op::RET_K,
                jt: 0,
                jf: 0,
                k: 0
            }]
        );
        for f in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
            assert!(!accepts(&prog, f));
        }
    }
}

#[test]
fn one_protocol_only() {
    let prog = build(&[PortSpec::udp(8000)], true);
    validate(&prog);
    assert!(accepts(&prog, &V4_UDP) && accepts(&prog, &V6_UDP));
    assert!(!accepts(&prog, &V4_TCP_SYN) && !accepts(&prog, &V6_TCP_SYN));
    let prog = build(&[PortSpec::tcp(22)], false);
    validate(&prog);
    assert!(accepts(&prog, &V4_TCP_SYN) && accepts(&prog, &V6_TCP_SYN));
    assert!(!accepts(&prog, &V4_UDP) && !accepts(&prog, &V6_UDP));
}

#[test]
fn duplicates_are_ignored() {
    let once = build(&knock_ports(), true);
    let mut twice = knock_ports().to_vec();
    twice.extend_from_slice(&knock_ports());
    twice.reverse();
    assert_eq!(build(&twice, true), once);
}

#[test]
fn long_lists_keep_jumps_short() {
    // Every other port: nothing to merge, one test per port.
    let ports: Vec<PortSpec> = (1000..2000)
        .step_by(2)
        .map(PortSpec::tcp)
        .chain((3000..3980).step_by(2).map(PortSpec::udp))
        .collect();
    let prog = build(&ports, true);
    validate(&prog); // every target inside the program; jt/jf are u8 by type
    assert!(prog.iter().all(|i| i.jt <= 2 && i.jf <= 2));
    // Two instructions per port, once for every family and framing.
    assert!(prog.len() <= 2 * ports.len() + 60, "{}", prog.len());
    assert!(prog.iter().any(|i| i.code == op::JA && i.k > 255));
    for p in [1000u16, 1234, 1998] {
        assert!(accepts(&prog, &v4(6, &tcp(1, p, 0x02, b""))), "{p}");
        assert!(accepts(&prog, &v6(6, &tcp(1, p, 0x02, b""))), "{p}");
    }
    for p in [3000u16, 3978] {
        assert!(accepts(&prog, &v4(17, &udp(1, p, b""))), "{p}");
        assert!(accepts(&prog, &v6(17, &udp(1, p, b""))), "{p}");
    }
    for p in [999u16, 1001, 2000, 2999, 3979, 3980] {
        assert!(!accepts(&prog, &v4(6, &tcp(1, p, 0x02, b""))), "{p}");
        assert!(!accepts(&prog, &v6(17, &udp(1, p, b""))), "{p}");
    }
}

#[test]
fn port_ranges_cost_three_instructions_and_match_their_bounds() {
    let r = |proto, first, last| PortRange { proto, first, last };
    let ranges = [
        r(L4Proto::Tcp, 40000, 41023),
        r(L4Proto::Tcp, 22, 22),
        r(L4Proto::Udp, 50000, 50511),
        r(L4Proto::Tcp, 41024, 41030), // adjacent: merged with the first
        r(L4Proto::Tcp, 40500, 40600), // inside: merged
    ];
    let prog = build_ranges(&ranges, true);
    validate(&prog);
    assert!(prog.iter().all(|i| i.jt <= 2 && i.jf <= 2));
    let single = build_ranges(&ranges[..1], true);
    let one_port = build(&[PortSpec::tcp(40000)], true);
    assert_eq!(single.len(), one_port.len() + 1, "a range: one jump more");
    for p in [22u16, 40000, 40001, 40777, 41023, 41024, 41030] {
        assert!(accepts(&prog, &v4(6, &tcp(1, p, 0x02, b""))), "{p}");
        assert!(accepts(&prog, &v6(6, &tcp(1, p, 0x02, b""))), "{p}");
        assert!(
            !accepts(&prog, &v4(6, &tcp(1, p, 0x12, b""))),
            "SYN-ACK {p}"
        );
    }
    for p in [21u16, 23, 39999, 41031, 50000, 65535] {
        assert!(!accepts(&prog, &v4(6, &tcp(1, p, 0x02, b""))), "{p}");
    }
    for p in [50000u16, 50255, 50511] {
        assert!(accepts(&prog, &v4(17, &udp(1, p, b""))), "{p}");
        assert!(accepts(&prog, &v6(17, &udp(1, p, b""))), "{p}");
    }
    for p in [49999u16, 50512, 40000] {
        assert!(!accepts(&prog, &v6(17, &udp(1, p, b""))), "{p}");
    }
}

#[test]
fn spa_port_passes_udp_while_knock_tcp_ports_stay_syn_only() {
    // What the daemon builds: knock ports plus udp:spa_port (Config::capture_ports).
    let cfg_text = "config sequence s\n\tlist knock tcp:7000\n\tlist knock udp:8000\n\tlist open tcp:22\n\
                    config client c\n\toption key 'BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc='\n\tlist allow tcp:2222\n";
    let cfg = crate::config::parse_str("t", cfg_text).unwrap();
    let ports = cfg.capture_ports();
    assert_eq!(
        ports,
        [
            PortSpec::tcp(7000),
            PortSpec::udp(8000),
            PortSpec::udp(62201)
        ]
    );
    let prog = build(&ports, true);
    validate(&prog);
    let spa_payload = [0x5au8; 120];
    for f in [
        v4(17, &udp(40000, 62201, &spa_payload)),
        v6(17, &udp(40000, 62201, &spa_payload)),
        v4(6, &tcp(1, 7000, 0x02, b"")),
    ] {
        assert!(accepts(&prog, &f), "{f:02x?}");
    }
    for f in [
        v4(6, &tcp(1, 62201, 0x02, b"")), // the SPA port is UDP only
        v6(6, &tcp(1, 62201, 0x02, b"")),
        v4(6, &tcp(1, 7000, 0x10, b"")), // knock TCP ports: SYN only
        v6(6, &tcp(1, 7000, 0x12, b"")),
        v4(17, &udp(1, 62202, &spa_payload)),
        v4(6, &tcp(1, 2222, 0x02, b"")), // guarded, not captured
    ] {
        assert!(!accepts(&prog, &f), "{f:02x?}");
    }
    // Without an enabled client the SPA port is not captured.
    let off = crate::config::parse_str("t", &format!("{cfg_text}\toption enabled 0\n")).unwrap();
    assert!(!accepts(
        &build(&off.capture_ports(), true),
        &v4(17, &udp(40000, 62201, &spa_payload))
    ));
}
