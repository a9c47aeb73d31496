//! The seed corpora: small, valid-looking inputs for every target, in each
//! harness's input format. `tests/fuzz_regressions.rs` writes them to
//! `fuzz/corpus/<target>/` on request (`write_seed_corpora`, ignored by default)
//! and replays whatever is committed there.

use core::net::IpAddr;

use postern::port::PortSpec;
use postern::spa::prefilter::RANDOM_LEN;
use postern::spa::request::Request;
use postern::spa::seal::NONCE_LEN;
use postern::spa::{Kind, RequestRepr, Target};

use super::net::{frame, TCP, UDP};
use super::spa::{nonce, seal_raw, LAPTOP, PHONE, STRANGER};

/// One seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4_frames() -> Vec<(&'static str, Vec<u8>)> {
    let (s4, d4, s6, d6) = (
        ip("192.0.2.10"),
        ip("198.51.100.1"),
        ip("2001:db8::10"),
        ip("2001:db8:1::1"),
    );
    let syn4 = frame(s4, d4, TCP, 40000, 22, 0x02, b"");
    let udp4 = frame(s4, d4, UDP, 40001, 8000, 0, b"knock!");
    let syn6 = frame(s6, d6, TCP, 40000, 22, 0x02, b"");
    let udp6 = frame(s6, d6, UDP, 40001, 8000, 0, b"knock!");
    let mut options = udp4[..20].to_vec();
    options[0] = 0x46;
    options[3] += 4;
    options.extend_from_slice(&[1, 1, 1, 0]);
    options.extend_from_slice(&udp4[20..]);
    let mut frag = udp4.clone();
    frag[6] = 0x20;
    let mut ext6 = udp6.clone();
    ext6[6] = 0;
    let mut zero_csum = udp4.clone();
    zero_csum[26..28].copy_from_slice(&[0, 0]);
    let mut padded = syn4.clone();
    padded.extend_from_slice(&[0; 6]);
    let mut icmp = frame(s4, d4, UDP, 0, 0, 0, b"");
    icmp[9] = 1;
    vec![
        ("v4_tcp_syn", syn4.clone()),
        ("v4_udp", udp4.clone()),
        ("v6_tcp_syn", syn6),
        ("v6_udp", udp6),
        (
            "v4_tcp_ack_data",
            frame(s4, d4, TCP, 40000, 22, 0x18, b"data"),
        ),
        ("v4_options", options),
        ("v4_fragment", frag),
        ("v6_hop_by_hop", ext6),
        ("v4_udp_no_checksum", zero_csum),
        ("v4_padded", padded),
        ("v4_icmp", icmp),
        ("truncated", udp4[..30].to_vec()),
        ("bad_version", vec![0x55; 40]),
    ]
}

fn uci_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("shipped", include_str!("../../../openwrt/postern/files/postern.config")),
        ("sequence", "config postern\n\toption backend 'dry-run'\n\nconfig sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'udp:8000'\n\tlist knock 'tcp:9000'\n\toption timeout '10'\n\tlist open 'tcp:22'\n\toption duration '30'\n"),
        ("close", "config sequence\n\tlist knock udp:1\n\tlist knock udp:2\n\toption action close\n\tlist close tcp:22\n"),
        ("client", "config postern\n\toption spa_port 62201\n\toption max_skew 60\n\toption spa_verify_budget 64\n\toption state_dir /tmp/p\n\nconfig client 'laptop'\n\toption key 'ERERERERERERERERERERERERERERERERERERERERERE='\n\tlist allow tcp:22\n\tlist source 192.0.2.0/24\n\tlist source 2001:db8::/32\n\toption max_duration 600\n"),
        ("quoting", "config sequence \"q\" # comment\n\tlist knock 'tcp:1'; list knock \"udp:\"'2'\n\toption enabled '1'\n\tlist open tcp:\\\n22\n\toption duration '4\n5'\n"),
        ("package_and_short", "package postern\nc sequence 'a'\n\tl knock tcp:5\n\to timeout 3\n\tl open udp:53\n"),
        ("reopen_merge", "config sequence 'a'\n\toption knock tcp:1\n\tlist knock tcp:2\nconfig sequence 'a'\n\tlist open tcp:3\n"),
        ("errors", "config postern\n\toption bogus 1\n\toption spa_port 0\nconfig sequence\n\tlist knock tcp:1\n\tlist knock tcp:1\nconfig client 'x'\n\toption key 'short'\n"),
        ("unterminated", "config sequence 'a\n\tlist knock tcp:1\n"),
        ("devices", "config postern\n\tlist interface wan\n\tlist device eth0\n\toption log_level debug\n\toption enabled 0\n"),
        ("empty_value", "config sequence 's'\n\toption timeout ''\n\tlist knock tcp:1\n\tlist open tcp:2\n"),
    ]
}

fn spa_seeds() -> Vec<(String, Vec<u8>)> {
    let req = |kind, duration, target, ports: &[PortSpec]| RequestRepr {
        kind,
        timestamp: 1_800_000_000,
        duration,
        target,
        ports: ports.iter().copied().collect(),
        name: heapless::String::new(),
    };
    let bytes = |r: &RequestRepr, pad: usize| {
        let mut b = vec![0x5a; r.buffer_len() + pad];
        r.emit(&mut Request::new_unchecked(&mut b[..]));
        b
    };
    let reqs = [
        (
            "open22",
            req(Kind::Open, 60, Target::Source, &[PortSpec::tcp(22)]),
            0,
        ),
        (
            "open_two",
            req(
                Kind::Open,
                300,
                Target::Source,
                &[PortSpec::tcp(22), PortSpec::udp(53)],
            ),
            16,
        ),
        (
            "close",
            req(Kind::Close, 0, Target::Source, &[PortSpec::tcp(22)]),
            3,
        ),
        (
            "addr4",
            req(
                Kind::Open,
                30,
                Target::Addr(ip("198.51.100.7")),
                &[PortSpec::tcp(443)],
            ),
            0,
        ),
        (
            "addr6",
            req(
                Kind::Open,
                30,
                Target::Addr(ip("2001:db8::7")),
                &[PortSpec::tcp(22)],
            ),
            7,
        ),
        (
            "too_long",
            req(Kind::Open, 3600, Target::Source, &[PortSpec::tcp(22)]),
            0,
        ),
        (
            "not_allowed",
            req(Kind::Open, 10, Target::Source, &[PortSpec::tcp(23)]),
            0,
        ),
    ];
    let named = |kind, duration, name: &str| RequestRepr {
        kind,
        timestamp: 1_800_000_000,
        duration,
        target: Target::Source,
        ports: heapless::Vec::new(),
        name: heapless::String::try_from(name).unwrap(),
    };
    let mut reqs = reqs.to_vec();
    reqs.extend([
        ("command_wake", named(Kind::Command, 0, "wake"), 5),
        ("command_unlisted", named(Kind::Command, 0, "unlisted"), 0),
        ("forward_nas", named(Kind::Forward, 120, "nas"), 9),
        ("forward_off", named(Kind::Forward, 120, "off"), 9),
        ("forward_cam_long", named(Kind::Forward, 600, "cam"), 4),
    ]);
    let mut out = Vec::new();
    for (name, r, pad) in &reqs {
        let plain = bytes(r, *pad);
        // Mode 1: key laptop, source 0, delta 0, then a nonce and the plaintext.
        let mut m1 = vec![1, 0, 0, 0, 0];
        m1.extend_from_slice(&[9; NONCE_LEN]);
        m1.extend_from_slice(&plain);
        out.push((format!("sealed_{name}"), m1));
        // Mode 2: the request bytes.
        let mut m2 = vec![2];
        m2.extend_from_slice(&plain);
        out.push((format!("request_{name}"), m2));
    }
    let plain = bytes(&reqs[0].1, 0);
    let mut phone = vec![1, 1, 0, 0, 0];
    phone.extend_from_slice(&[3; NONCE_LEN]);
    phone.extend_from_slice(&plain);
    out.push(("sealed_phone".into(), phone));
    let mut skewed = vec![1, 0, 0, 100, 1];
    skewed.extend_from_slice(&[4; NONCE_LEN]);
    skewed.extend_from_slice(&plain);
    out.push(("sealed_skewed".into(), skewed));
    // Mode 0: real packets (laptop, phone, stranger) and junk.
    for (name, k) in [("laptop", LAPTOP), ("phone", PHONE), ("stranger", STRANGER)] {
        let mut m0 = vec![0, 0];
        m0.extend_from_slice(&seal_raw(k, &nonce(k, &[k; RANDOM_LEN]), &plain));
        out.push((format!("raw_{name}"), m0));
    }
    out.push((
        "raw_junk".into(),
        [0u8, 1].into_iter().chain(0..75u8).collect(),
    ));
    // Mode 3: tamper with byte 30.
    let mut m3 = vec![3, 0, 30, 0x40];
    m3.extend_from_slice(&plain);
    out.push(("tampered".into(), m3));
    out
}

/// Engine ops (see `engine::run`): 3 = observation, 4 = frame, 5 = sealed SPA, 0 = clock.
fn engine_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Observation op: src index 0, port index, flags SYN, no payload, src port.
    let knock = |port_index: u8| vec![3, 0, port_index, 0x02, 0, 0x9c, 0x40];
    let frame = |port_index: u8| vec![4, 0, 0, port_index, 0x02, 0];
    let wait = |ms: u16| {
        let [hi, lo] = ms.to_be_bytes();
        vec![0, hi, lo, 0]
    };
    let cat =
        |parts: Vec<Vec<u8>>| -> Vec<u8> { std::iter::once(0u8).chain(parts.concat()).collect() };
    // Sealed SPA op: key laptop, open, duration 60, target source, one port (tcp:22), delta 0, nonce byte, (no padding), src 0, as observation.
    let spa = |key_index: u8, as_frame: u8| vec![5, key_index, 0, 60, 0, 0, 0, 0, 7, 0, as_frame];
    // Sealed command op: key, kind byte 0x40 (command; 16 bytes of padding), target source, name index, delta 0, nonce byte, padding, src 0, as observation.
    let command = |key_index: u8, name: u8, nonce: u8| {
        let mut v = vec![5, key_index, 0x40, 0, name, 0, nonce];
        v.extend_from_slice(&[0xaa; 16]);
        v.extend_from_slice(&[0, 0]);
        v
    };
    // Sealed forward op: kind byte 0x41 (forward), duration 60, target source, name index, …
    let forward = |key_index: u8, name: u8, nonce: u8| {
        let mut v = vec![5, key_index, 0x41, 60, 0, name, 0, nonce];
        v.extend_from_slice(&[0xbb; 16]);
        v.extend_from_slice(&[0, 0]);
        v
    };
    let mut locked = cat(vec![spa(0, 0), spa(1, 1), knock(0), knock(1), knock(2)]);
    locked[0] = 1;
    let mut locked_junk = vec![1, 7, 0, 60];
    locked_junk.extend_from_slice(&seal_raw(0x55, &[0; NONCE_LEN], &[1; 40])[..60]);
    locked_junk.push(0);
    vec![
        ("ssh_observations", cat(vec![knock(0), knock(1), knock(2)])),
        ("ssh_frames", cat(vec![frame(0), frame(1), frame(2)])),
        (
            "ssh_then_close",
            cat(vec![
                knock(0),
                knock(1),
                knock(2),
                wait(500),
                knock(2),
                knock(1),
                knock(0),
            ]),
        ),
        (
            "ssh_too_slow",
            cat(vec![knock(0), knock(1), wait(11_000), knock(2)]),
        ),
        (
            "ssh_reset",
            cat(vec![knock(0), knock(3), knock(1), knock(2)]),
        ),
        ("one_step", cat(vec![knock(3), knock(3)])),
        ("rep", cat(vec![knock(4), knock(5), knock(4), knock(5)])),
        ("prefix", cat(vec![knock(0), knock(1), knock(6)])),
        ("spa_open", cat(vec![spa(0, 0)])),
        (
            "spa_frame_and_replay",
            cat(vec![spa(0, 1), vec![6, 0, 0, 1]]),
        ),
        (
            "spa_phone_and_old",
            cat(vec![spa(1, 0), spa(2, 0), spa(3, 1)]),
        ),
        ("spa_command", cat(vec![command(0, 0, 7), command(0, 1, 8)])),
        (
            "spa_forward_and_replay",
            cat(vec![forward(0, 4, 7), vec![6, 0, 0, 1], forward(1, 5, 9)]),
        ),
        ("spa_forward_not_listed", cat(vec![forward(1, 4, 7)])),
        ("locked", locked),
        ("locked_junk", locked_junk),
    ]
}

fn bpf_seeds() -> Vec<(String, Vec<u8>)> {
    let ports = |list: &[(u8, u16)]| -> Vec<u8> {
        let mut v = vec![list.len() as u8];
        for (proto, port) in list {
            v.push(*proto);
            v.extend_from_slice(&port.to_be_bytes());
        }
        v
    };
    let knock_ports = ports(&[(0, 22), (1, 8000), (0, 2222), (1, 62201)]);
    let mut out = Vec::new();
    for (name, f) in v4_frames() {
        let mut v = vec![1];
        v.extend_from_slice(&knock_ports);
        v.extend_from_slice(&f);
        out.push((name.to_string(), v));
        if name.contains("tcp") {
            let mut v = vec![0];
            v.extend_from_slice(&knock_ports);
            v.extend_from_slice(&f);
            out.push((format!("{name}_any"), v));
        }
    }
    let mut arp = vec![3, 0x08, 0x06];
    arp.extend_from_slice(&knock_ports);
    arp.extend_from_slice(&v4_frames()[1].1);
    out.push(("arp_ethertype".into(), arp));
    let mut empty = vec![1, 0];
    empty.extend_from_slice(&v4_frames()[0].1);
    out.push(("no_ports".into(), empty));
    let list: Vec<(u8, u16)> = (0..200u16).map(|i| ((i % 2) as u8, 1000 + i * 7)).collect();
    let mut many = vec![1];
    many.extend_from_slice(&ports(&list));
    out.push(("many_ports".into(), many));
    out
}

/// fwknop inputs (see `fwknop::run`): the real client's packets raw (mode 0)
/// and their plaintexts sealed again (mode 1), hand-made field lists (mode
/// 1), built messages of every type (mode 2), a tampered packet (mode 3).
fn fwknop_seeds() -> Vec<(String, Vec<u8>)> {
    use super::fwknop::{b64, open_vector, variant_of, vectors};
    let mut out = Vec::new();
    for (name, k, ts, packet) in vectors() {
        let v = variant_of(&k) as u8;
        let mut m0 = vec![0, v, 0];
        m0.extend_from_slice(&packet);
        out.push((format!("raw_{name}"), m0));
        if let Some((salt, plain)) = open_vector(&k, &packet) {
            // Sealer vec, source 203.0.113.5, the vector's salt, no digest added, no skew.
            let mut m1 = vec![1, v, 0, 1];
            m1.extend_from_slice(&salt);
            m1.extend_from_slice(&[255, 0]);
            m1.extend_from_slice(&plain);
            out.push((format!("sealed_{name}"), m1));
        }
        let _ = ts;
    }
    let fields = |ty: u8, msg: &str, extra: &str| {
        format!(
            "1234567890123456:{}:1795475868:3.0.0:{ty}:{}{extra}",
            b64(b"root"),
            b64(msg.as_bytes())
        )
    };
    let nat = |host: &str| format!(":{}", b64(host.as_bytes()));
    let hand = [
        ("wake", fields(0, "0.0.0.0,wake nas", "")),
        ("reboot_not_listed", fields(0, "0.0.0.0,reboot", "")),
        (
            "forward_2200",
            fields(2, "0.0.0.0,tcp/2200", &nat("10.213.0.5,22")),
        ),
        (
            "forward_timeout",
            fields(
                4,
                "10.213.0.2,tcp/22",
                &format!("{}:45", nat("10.213.0.5,22")),
            ),
        ),
        (
            "forward_wrong_host",
            fields(2, "0.0.0.0,tcp/2200", &nat("10.213.0.6,22")),
        ),
        ("access_timeout", fields(3, "0.0.0.0,tcp/22,udp/53", ":600")),
        ("server_auth", fields(1, "0.0.0.0,tcp/22", ":c2VjcmV0")),
    ];
    for (i, (name, f)) in hand.iter().enumerate() {
        // Sealer vec, a source, a salt, digest sha256 (index 2), no skew.
        let mut m1 = vec![1, 0, 0, i as u8 % 4];
        m1.extend_from_slice(&[i as u8; 8]);
        m1.extend_from_slice(&[2, 0]);
        m1.extend_from_slice(f.as_bytes());
        out.push((format!("fields_{name}"), m1));
    }
    // Mode 2: sealer vec, source, salt, flags, type, ts delta, address, …
    for ty in 0..8u8 {
        let mut m2 = vec![2, 0, 0, 0];
        m2.extend_from_slice(&[ty; 8]);
        m2.extend_from_slice(&[0x40, ty, 0, 0, 0, 1, 3, 0, 0, 30, 0]);
        out.push((format!("built_type{ty}"), m2));
    }
    let mut m2 = vec![2, 0, 4, 0];
    m2.extend_from_slice(&[1; 8]);
    m2.extend_from_slice(&[0x40, 2, 0, 0, 0, 4, 1, 0]);
    out.push(("built_mine_forward".into(), m2));
    let mut m3 = vec![3, 0, 0, 5, 0x41];
    m3.extend_from_slice(&[2; 8]);
    m3.extend_from_slice(&super::fwknop::with_digest_pub(
        fields(1, "0.0.0.0,tcp/22", "").as_bytes(),
    ));
    out.push(("tampered".into(), m3));
    out
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out: Vec<Seed> = Vec::new();
    for (name, f) in v4_frames() {
        out.push(("wire", name.to_string(), f));
    }
    for (name, text) in uci_files() {
        out.push(("uci", name.to_string(), text.as_bytes().to_vec()));
    }
    out.push(("uci", "latin1".into(), b"config sequence '\xe9'\n".to_vec()));
    for (name, b) in spa_seeds() {
        out.push(("spa", name, b));
    }
    for (name, b) in engine_seeds() {
        out.push(("engine", name.to_string(), b));
    }
    for (name, b) in bpf_seeds() {
        out.push(("bpf", name, b));
    }
    for (name, b) in fwknop_seeds() {
        out.push(("fwknop", name, b));
    }
    for (name, b) in peer_seeds() {
        out.push(("peer", name.to_string(), b));
    }
    out
}

/// `peer` seeds: a raw datagram, every item sealed, a truncated item, a flipped byte.
fn peer_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use postern::peer::message::{name, Item};
    use postern::spa::ReplayEntry;
    use std::time::Duration;
    let items = [
        Item::Grant {
            addr: ip("192.0.2.7"),
            port: PortSpec::tcp(22),
            remaining: Duration::from_secs(30),
            origin: name("laptop"),
        },
        Item::Close {
            addr: ip("2001:db8::7"),
            port: PortSpec::udp(53),
        },
        Item::Forward {
            addr: ip("198.51.100.1"),
            forward: name("nas"),
            client: name("phone"),
            remaining: Duration::from_secs(60),
        },
        Item::Ban {
            net: "2001:db8:1:2::/64".parse().unwrap(),
            remaining: Duration::from_secs(300),
        },
        Item::Unban {
            net: "203.0.113.9/32".parse().unwrap(),
        },
        Item::Replay {
            client: Some(name("laptop")),
            entry: ReplayEntry {
                nonce: [7; NONCE_LEN],
                timestamp: 1_800_000_000,
            },
        },
        Item::ResyncRequest,
        Item::Keepalive,
    ];
    let mut all = Vec::new();
    for i in &items {
        let mut b = [0u8; 128];
        let n = i.encode(&mut b).unwrap();
        all.extend_from_slice(&b[..n]);
    }
    let mut sealed = super::peer::seal(9, &all);
    // A wrong tag: the datagram as a forger without the key sends it.
    if let Some(last) = sealed.last_mut() {
        *last ^= 1;
    }
    let mut raw = vec![0];
    raw.extend_from_slice(&sealed);
    let mut every = vec![1, 9];
    every.extend_from_slice(&all);
    let mut cut = vec![1, 3];
    cut.extend_from_slice(&all[..all.len() - 30]);
    let mut flipped = vec![2, 0, 40, 0x10];
    flipped.extend_from_slice(&all);
    vec![
        ("raw_wrong_tag", raw),
        ("every_item", every),
        ("truncated_item", cut),
        ("flipped_byte", flipped),
    ]
}
