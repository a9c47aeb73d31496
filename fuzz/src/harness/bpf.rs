//! Target `bpf`: the capture filter builder on arbitrary port lists, and the
//! built program run over an arbitrary packet.
//!
//! Invariants: the program is one the kernel accepts (known opcodes, every
//! jump lands inside it, it ends in `ret`, at most `MAX_INSNS`); run by the
//! small interpreter below it accepts a packet exactly when an independent
//! reading of the packet says it should (right EtherType and version nibble,
//! bare or in a PPPoE session frame, not an IPv4 fragment, TCP/UDP to a
//! listed port, a connection-opening SYN when asked); and it never drops a
//! packet that `wire::observe` accepts and the engine would use.

use postern::capture::bpf::{build, op, SockFilter, AD_PKTTYPE, AD_PROTOCOL, MAX_INSNS, SNAP_LEN};
use postern::port::{L4Proto, PortSpec};
use postern::wire::{observe, Checksums};

use super::input::Input;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_PPP_SES: u16 = 0x8864;

/// Runs one input: flags byte (bit 0 `tcp_syn_only`, bit 1 a fuzz-chosen
/// EtherType follows, else bit 2 the packet is a PPPoE session frame),
/// port count, 3 bytes per port, then the packet.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let syn_only = flags & 1 != 0;
    let ethertype = if flags & 2 != 0 {
        Some(input.u16())
    } else if flags & 4 != 0 {
        Some(ETH_P_PPP_SES)
    } else {
        None
    };
    let n = input.u8();
    let ports: Vec<PortSpec> = (0..n)
        .map(|_| {
            let proto = if input.u8() & 1 == 0 {
                L4Proto::Tcp
            } else {
                L4Proto::Udp
            };
            PortSpec {
                proto,
                port: input.u16(),
            }
        })
        .collect();
    let packet = input.rest();
    let prog = build(&ports, syn_only);
    check_program(&prog);

    let ethertype = ethertype.unwrap_or(match packet.first().map(|b| b >> 4) {
        Some(6) => ETH_P_IPV6,
        _ => ETH_P_IP,
    });
    let verdict = interpret(&prog, packet, ethertype);
    assert!(verdict == 0 || verdict == SNAP_LEN, "returned {verdict}");
    let expected = should_pass(packet, ethertype, &ports, syn_only);
    assert_eq!(
        verdict == SNAP_LEN,
        expected,
        "filter disagrees with the reference reading"
    );

    if let Ok(obs) = observe(packet, Checksums::SkipTransport) {
        let family_ok = (packet[0] >> 4 == 4) == (ethertype == ETH_P_IP)
            && matches!(ethertype, ETH_P_IP | ETH_P_IPV6);
        let wanted =
            ports.contains(&PortSpec {
                proto: obs.proto,
                port: obs.dst_port,
            }) && (obs.proto == L4Proto::Udp || !syn_only || obs.tcp_flags.is_initial_syn());
        if family_ok && wanted {
            assert_eq!(verdict, SNAP_LEN, "filter drops a packet the engine uses");
        }
    }
}

/// What the kernel's verifier insists on, for the opcodes `build` emits.
pub fn check_program(prog: &[SockFilter]) {
    assert!(
        !prog.is_empty() && prog.len() <= MAX_INSNS,
        "{} instructions",
        prog.len()
    );
    assert_eq!(prog[prog.len() - 1].code, op::RET_K, "does not end in ret");
    for (pc, i) in prog.iter().enumerate() {
        let targets = match i.code {
            op::JA => vec![pc + 1 + i.k as usize],
            op::JEQ_K | op::JGT_K | op::JGE_K | op::JSET_K => {
                vec![pc + 1 + usize::from(i.jt), pc + 1 + usize::from(i.jf)]
            }
            op::LDH_ABS | op::LDB_ABS | op::LDH_IND | op::LDB_IND | op::LDXB_MSH => vec![],
            op::AND_K | op::RET_K | op::LDX_IMM | op::LDX_MEM | op::ST => vec![],
            op::LSH_K | op::ADD_K | op::ADD_X | op::TXA => vec![],
            c => panic!("unknown opcode {c:#x} at {pc}"),
        };
        for t in targets {
            assert!(
                t < prog.len(),
                "jump from {pc} to {t}, past the end ({})",
                prog.len()
            );
        }
    }
}

/// Runs `prog` over `pkt` as the kernel would, `ethertype` as `skb->protocol`
/// (and `PACKET_HOST` as `skb->pkt_type`). Returns what the program returns
/// (bytes to keep; 0 drops).
pub fn interpret(prog: &[SockFilter], pkt: &[u8], ethertype: u16) -> u32 {
    let byte = |off: u32| pkt.get(off as usize).map(|b| u32::from(*b));
    let half = |off: u32| {
        let o = off as usize;
        Some(u32::from(u16::from_be_bytes([
            *pkt.get(o)?,
            *pkt.get(o.checked_add(1)?)?,
        ])))
    };
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    // The kernel's checker wants every scratch slot stored before it is loaded.
    let mut mem: [Option<u32>; 16] = [None; 16];
    loop {
        let i = prog[pc];
        pc += 1;
        let loaded = match i.code {
            op::LDH_ABS if i.k == AD_PROTOCOL => Some(u32::from(ethertype)),
            op::LDH_ABS if i.k == AD_PKTTYPE => Some(0),
            op::LDH_ABS => half(i.k),
            op::LDB_ABS => byte(i.k),
            op::LDH_IND => half(x.wrapping_add(i.k)),
            op::LDB_IND => byte(x.wrapping_add(i.k)),
            op::LDXB_MSH => {
                x = 4 * (byte(i.k).unwrap_or(0) & 0xf);
                if byte(i.k).is_none() {
                    return 0;
                }
                continue;
            }
            op::AND_K => {
                a &= i.k;
                continue;
            }
            op::LSH_K => {
                a = a.wrapping_shl(i.k);
                continue;
            }
            op::ADD_K => {
                a = a.wrapping_add(i.k);
                continue;
            }
            op::ADD_X => {
                a = a.wrapping_add(x);
                continue;
            }
            op::TXA => {
                a = x;
                continue;
            }
            op::LDX_IMM => {
                x = i.k;
                continue;
            }
            op::ST => {
                mem[i.k as usize] = Some(a);
                continue;
            }
            op::LDX_MEM => {
                x = mem[i.k as usize].expect("scratch slot loaded before it was stored");
                continue;
            }
            op::JA => {
                pc += i.k as usize;
                continue;
            }
            op::JEQ_K => {
                pc += usize::from(if a == i.k { i.jt } else { i.jf });
                continue;
            }
            op::JGT_K => {
                pc += usize::from(if a > i.k { i.jt } else { i.jf });
                continue;
            }
            op::JGE_K => {
                pc += usize::from(if a >= i.k { i.jt } else { i.jf });
                continue;
            }
            op::JSET_K => {
                pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf });
                continue;
            }
            op::RET_K => return i.k,
            c => panic!("unknown opcode {c:#x}"),
        };
        match loaded {
            Some(v) => a = v,
            None => return 0, // a load past the end: the kernel drops
        }
    }
}

/// The reference: should a packet with this EtherType pass, read directly.
fn should_pass(p: &[u8], ethertype: u16, ports: &[PortSpec], syn_only: bool) -> bool {
    let be16 = |at: usize| Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]));
    let transport = |proto: u8, l4: usize| -> Option<bool> {
        let proto = match proto {
            6 => L4Proto::Tcp,
            17 => L4Proto::Udp,
            _ => return Some(false),
        };
        if !ports.iter().any(|s| s.proto == proto) {
            return Some(false);
        }
        if proto == L4Proto::Tcp && syn_only && *p.get(l4 + 13)? & 0x12 != 0x02 {
            return Some(false);
        }
        let port = be16(l4 + 2)?;
        Some(ports.contains(&PortSpec { proto, port }))
    };
    let ipv4 = |at: usize| -> Option<bool> {
        if p.get(at)? >> 4 != 4 || be16(at + 6)? & 0x3fff != 0 {
            return Some(false);
        }
        transport(*p.get(at + 9)?, at + usize::from(p[at] & 0xf) * 4)
    };
    let ipv6 = |at: usize| -> Option<bool> {
        if p.get(at)? >> 4 != 6 {
            return Some(false);
        }
        transport(*p.get(at + 6)?, at + 40)
    };
    let verdict = || -> Option<bool> {
        match ethertype {
            ETH_P_IP => ipv4(0),
            ETH_P_IPV6 => ipv6(0),
            // PPPoE session data (version/type 0x11, code 0), PPP protocol
            // IPv4 or IPv6: the IP packet at 8.
            ETH_P_PPP_SES if be16(0)? == 0x1100 => match be16(6)? {
                0x0021 => ipv4(8),
                0x0057 => ipv6(8),
                _ => Some(false),
            },
            _ => Some(false),
        }
    };
    verdict().unwrap_or(false)
}
