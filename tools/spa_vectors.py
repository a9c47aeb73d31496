#!/usr/bin/env python3
"""Computes the test vectors of docs/spa-protocol.md (protocol 2) from the
specification alone, without postern's code: SipHash-2-4 written here from the
paper (checked against its reference vectors), HMAC-SHA256 from the standard
library, HChaCha20 written here (checked against draft-irtf-cfrg-xchacha's
vector) plus `cryptography`'s ChaCha20-Poly1305 (XChaCha20-Poly1305 as the
draft builds it), and the plaintext packed from the table in the doc.

It also re-derives the protocol 1 vector 1 of the previous doc (raw nonce,
version 1) as a cross-check against the vectors made earlier by another
script. Run: python3 tools/spa_vectors.py (prints the doc's vector block).
"""

import hashlib
import hmac
import ipaddress
import struct

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

MASK = (1 << 64) - 1
AAD = b"postern-spa"
LABEL = b"postern spa2 pre-filter"


def rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def siphash24(key, msg):
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sipround():
        v[0] = (v[0] + v[1]) & MASK; v[1] = rotl(v[1], 13); v[1] ^= v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & MASK; v[3] = rotl(v[3], 16); v[3] ^= v[2]
        v[0] = (v[0] + v[3]) & MASK; v[3] = rotl(v[3], 21); v[3] ^= v[0]
        v[2] = (v[2] + v[1]) & MASK; v[1] = rotl(v[1], 17); v[1] ^= v[2]; v[2] = rotl(v[2], 32)

    end = len(msg) - len(msg) % 8
    blocks = [msg[i:i + 8] for i in range(0, end, 8)]
    blocks.append(msg[end:] + bytes(7 - len(msg) % 8) + bytes([len(msg) & 0xFF]))
    for b in blocks:
        m = struct.unpack("<Q", b)[0]
        v[3] ^= m
        sipround(); sipround()
        v[0] ^= m
    v[2] ^= 0xFF
    for _ in range(4):
        sipround()
    return struct.pack("<Q", v[0] ^ v[1] ^ v[2] ^ v[3])


def quarter(s, a, b, c, d):
    m = 0xFFFFFFFF
    r = lambda x, n: ((x << n) | (x >> (32 - n))) & m
    s[a] = (s[a] + s[b]) & m; s[d] = r(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & m; s[b] = r(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & m; s[d] = r(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & m; s[b] = r(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = list(struct.unpack("<4I", b"expand 32-byte k")) + list(struct.unpack("<8I", key)) \
        + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_seal(key, nonce24, plain):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(bytes(4) + nonce24[16:], plain, AAD)


def self_checks():
    key = bytes(range(16))
    msg = bytes(range(64))
    assert siphash24(key, msg[:0]).hex() == "310e0edd47db6f72"
    assert siphash24(key, msg[:8]).hex() == "6224939a79f5f593"
    assert siphash24(key, msg[:15]).hex() == "e545be4961ca29a1"  # paper, appendix A
    sub = hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927"))
    assert sub.hex() == ("82413b4227b27bfed30e42508a877d73"
                         "a0f9e4d58a74a853c12ec41326d3ecdc"), sub.hex()


PROTO = {"tcp": 6, "udp": 17}
KINDS = {"open": 1, "close": 2, "command": 3, "forward": 4}


def plaintext(version, kind, ts, duration, addr, ports=(), name=b"", padding=b""):
    if addr is None:
        akind, abytes = 0, bytes(16)
    else:
        a = ipaddress.ip_address(addr)
        akind = 4 if a.version == 4 else 6
        abytes = a.packed + bytes(16 - len(a.packed))
    body = struct.pack(">BBQIB", version, KINDS[kind], ts, duration, akind) + abytes
    if kind in ("command", "forward"):
        body += bytes([len(name)]) + name
    else:
        body += bytes([len(ports)]) + b"".join(struct.pack(">BH", PROTO[p], n) for p, n in ports)
    return body + padding


def nonce_v2(key, random20):
    kpf = hmac.new(key, LABEL, hashlib.sha256).digest()[:16]
    return kpf, random20 + siphash24(kpf, random20)[:4]


KEY = bytes(range(32))
VECTORS = [
    ("open tcp:22 for 30 s, for the packet's source", 0x40, b"",
     dict(kind="open", ts=1_800_000_000, duration=30, addr=None, ports=[("tcp", 22)])),
    ("open tcp:22 and udp:53 for 600 s, for 198.51.100.7 (-a)", 0x60, bytes.fromhex("a5a5a5a5"),
     dict(kind="open", ts=1_800_000_123, duration=600, addr="198.51.100.7",
          ports=[("tcp", 22), ("udp", 53)])),
    ("close tcp:2222, for 2001:db8::7 (-a)", 0x80, bytes(range(9)),
     dict(kind="close", ts=1_800_000_456, duration=0, addr="2001:db8::7", ports=[("tcp", 2222)])),
    ("run command wake_nas, for the packet's source", 0xA0, b"",
     dict(kind="command", ts=1_800_000_789, duration=0, addr=None, name=b"wake_nas")),
    ("open forward nas_ssh for 120 s, for 203.0.113.9 (-a)", 0xC0, bytes.fromhex("5a5a"),
     dict(kind="forward", ts=1_800_001_000, duration=120, addr="203.0.113.9", name=b"nas_ssh")),
    ("open the client's default_access (no ports) for 60 s, for the packet's source", 0xE0,
     bytes.fromhex("c3"),
     dict(kind="open", ts=1_800_001_234, duration=60, addr=None, ports=[])),
]

OLD_V1_PACKET = ("404142434445464748494a4b4c4d4e4f5051525354555657d5380570d0e0125f5df487beaf8265"
                 "9292baadc41359539a6a31fd450904239110f914aa8b5cec33508a868d1160b61b8d0eec")


def main():
    self_checks()
    # Protocol 1's vector 1 (made by an earlier, separate script): same AEAD.
    old = xchacha_seal(KEY, bytes(range(0x40, 0x58)),
                       plaintext(1, **VECTORS[0][3]))
    assert (bytes(range(0x40, 0x58)) + old).hex() == OLD_V1_PACKET
    for n, (title, start, padding, req) in enumerate(VECTORS, 1):
        random20 = bytes(range(start, start + 20))
        kpf, nonce = nonce_v2(KEY, random20)
        plain = plaintext(2, padding=padding, **req)
        packet = nonce + xchacha_seal(KEY, nonce, plain)
        print(f"vector {n}: {title}")
        print(f"  key:        {KEY.hex()}")
        print(f"  filter_key: {kpf.hex()}")
        print(f"  random:     {random20.hex()}")
        print(f"  nonce:      {nonce.hex()}")
        print(f"  padding:    {padding.hex() or '-'}")
        print(f"  plaintext:  {plain.hex()}")
        print(f"  packet:     {packet.hex()}")
        print()


if __name__ == "__main__":
    main()
