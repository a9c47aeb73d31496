#!/usr/bin/env python3
"""A minimal PPPoE access concentrator for the emulated router (scripts/vm/e2e.sh).

The host kernel has no PPP, so the ISP's side of the link lives here, in user
space: PPPoE discovery (RFC 2516: PADI/PADO/PADR/PADS/PADT) and just enough PPP
(RFC 1661 LCP, RFC 1332 IPCP) for the router's real pppd + kernel PPPoE to
bring `pppoe-wan` up. IPv4 packets of the session are bridged to a TUN device,
so host tools (postern, knock, bash's /dev/tcp) talk to the router over the
PPPoE link without knowing it.

    pppoe_ac.py TAP TUN LOCAL_IPV4 PEER_IPV4

Runs in the namespace holding the VM's tap and the (persistent, configured)
TUN device. On SIGTERM it ends the session with a PADT, as an ISP does when a
DSL line drops, and exits. Test code: no authentication, one session.
"""

import fcntl
import os
import select
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
ETH_DISCOVERY = 0x8863
ETH_SESSION = 0x8864
PADI, PADO, PADR, PADS, PADT = 0x09, 0x07, 0x19, 0x65, 0xA7
TAG_SERVICE_NAME, TAG_AC_NAME, TAG_HOST_UNIQ, TAG_RELAY_ID = 0x0101, 0x0102, 0x0103, 0x0110
PPP_IP, PPP_LCP, PPP_IPCP = 0x0021, 0xC021, 0x8021
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ = 1, 2, 3, 4
TERM_REQ, TERM_ACK, PROTO_REJ, ECHO_REQ, ECHO_REPLY = 5, 6, 8, 9, 10
MAGIC = 0x50535452
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
PACKET_OUTGOING = 4


def log(msg):
    print(f"pppoe-ac: {msg}", flush=True)


def tags(payload):
    """The PPPoE tags of a discovery payload, as (type, value) pairs."""
    out, i = [], 0
    while i + 4 <= len(payload):
        t, n = struct.unpack_from("!HH", payload, i)
        out.append((t, payload[i + 4 : i + 4 + n]))
        i += 4 + n
    return out


def tag(t, value):
    return struct.pack("!HH", t, len(value)) + value


def options(data):
    """PPP configuration options as (type, value) pairs."""
    out, i = [], 0
    while i + 2 <= len(data):
        t, n = data[i], data[i + 1]
        if n < 2:
            break
        out.append((t, data[i + 2 : i + n]))
        i += n
    return out


def option(t, value):
    return bytes([t, len(value) + 2]) + value


class Concentrator:
    def __init__(self, tap, tun, local, peer):
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.raw.bind((tap, 0))
        with open(f"/sys/class/net/{tap}/address") as f:
            self.mac = bytes.fromhex(f.read().strip().replace(":", ""))
        self.tun = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(self.tun, TUNSETIFF, struct.pack("16sH", tun.encode(), IFF_TUN | IFF_NO_PI))
        self.local = socket.inet_aton(local)
        self.peer = socket.inet_aton(peer)
        self.next_session = 0x1200
        self.ident = 0
        self.reset()

    def reset(self):
        self.client = None
        self.session = 0
        self.lcp_acked = self.lcp_ours = False
        self.ipcp_acked = self.ipcp_ours = False

    def send_eth(self, dst, ethertype, payload):
        self.raw.send(dst + self.mac + struct.pack("!H", ethertype) + payload)

    def send_discovery(self, dst, code, session, body):
        self.send_eth(dst, ETH_DISCOVERY, struct.pack("!BBHH", 0x11, code, session, len(body)) + body)

    def send_ppp(self, proto, payload):
        if self.client is None:
            return
        ppp = struct.pack("!H", proto) + payload
        self.send_eth(
            self.client, ETH_SESSION, struct.pack("!BBHH", 0x11, 0, self.session, len(ppp)) + ppp
        )

    def send_ctl(self, proto, code, ident, data):
        self.send_ppp(proto, struct.pack("!BBH", code, ident, 4 + len(data)) + data)

    def next_ident(self):
        self.ident = (self.ident + 1) & 0xFF
        return self.ident

    def terminate(self):
        if self.client is not None:
            self.send_discovery(self.client, PADT, self.session, b"")
            log(f"PADT: session {self.session:#x} ended")
        self.reset()

    # --- discovery -----------------------------------------------------------
    def discovery(self, src, code, session, body):
        echo = b"".join(
            tag(t, v) for t, v in tags(body) if t in (TAG_SERVICE_NAME, TAG_HOST_UNIQ, TAG_RELAY_ID)
        )
        if TAG_SERVICE_NAME not in [t for t, _ in tags(body)]:
            echo = tag(TAG_SERVICE_NAME, b"") + echo
        if code == PADI:
            self.send_discovery(src, PADO, 0, tag(TAG_AC_NAME, b"postern-lab") + echo)
            log("PADI -> PADO")
        elif code == PADR:
            self.reset()
            self.next_session += 1
            self.client, self.session = src, self.next_session
            self.send_discovery(src, PADS, self.session, echo)
            log(f"PADR -> PADS session {self.session:#x}")
        elif code == PADT and session == self.session:
            log("PADT from the client")
            self.reset()

    # --- PPP -------------------------------------------------------------------
    def ppp(self, data):
        if len(data) < 2:
            return
        proto = struct.unpack_from("!H", data)[0]
        info = data[2:]
        if proto == PPP_IP:
            if self.ipcp_acked and self.ipcp_ours:
                os.write(self.tun, info)
            return
        if proto not in (PPP_LCP, PPP_IPCP):
            # IPv6CP, CCP, …: refused, as a peer that does not speak them.
            self.send_ctl(PPP_LCP, PROTO_REJ, self.next_ident(), data[:2] + info)
            return
        if len(info) < 4:
            return
        code, ident, length = struct.unpack_from("!BBH", info)
        body = info[4:length]
        if proto == PPP_LCP:
            self.lcp(code, ident, body)
        else:
            self.ipcp(code, ident, body)

    def lcp(self, code, ident, body):
        if code == CONF_REQ:
            # MRU, magic number and the rest: all acceptable.
            self.send_ctl(PPP_LCP, CONF_ACK, ident, body)
            self.lcp_acked = True
            if not self.lcp_ours:
                self.send_ctl(PPP_LCP, CONF_REQ, self.next_ident(), option(5, struct.pack("!I", MAGIC)))
        elif code == CONF_ACK:
            self.lcp_ours = True
            log("LCP opened")
            self.send_ctl(PPP_IPCP, CONF_REQ, self.next_ident(), option(3, self.local))
        elif code in (CONF_NAK, CONF_REJ):
            self.send_ctl(PPP_LCP, CONF_REQ, self.next_ident(), b"")
        elif code == ECHO_REQ:
            self.send_ctl(PPP_LCP, ECHO_REPLY, ident, struct.pack("!I", MAGIC) + body[4:])
        elif code == TERM_REQ:
            self.send_ctl(PPP_LCP, TERM_ACK, ident, b"")
            log("LCP terminated by the client")
            self.lcp_acked = self.lcp_ours = self.ipcp_acked = self.ipcp_ours = False

    def ipcp(self, code, ident, body):
        if code == CONF_REQ:
            rej = b"".join(option(t, v) for t, v in options(body) if t != 3)
            if rej:
                self.send_ctl(PPP_IPCP, CONF_REJ, ident, rej)
                return
            addr = dict(options(body)).get(3)
            if addr != self.peer:
                self.send_ctl(PPP_IPCP, CONF_NAK, ident, option(3, self.peer))
                return
            self.send_ctl(PPP_IPCP, CONF_ACK, ident, body)
            self.ipcp_acked = True
        elif code == CONF_ACK:
            self.ipcp_ours = True
        elif code in (CONF_NAK, CONF_REJ):
            self.send_ctl(PPP_IPCP, CONF_REQ, self.next_ident(), option(3, self.local))
        if self.ipcp_acked and self.ipcp_ours and code in (CONF_REQ, CONF_ACK):
            log(f"IPCP opened: {socket.inet_ntoa(self.local)} <-> {socket.inet_ntoa(self.peer)}")

    # --- the loop --------------------------------------------------------------
    def run(self):
        log(f"listening (MAC {self.mac.hex(':')})")
        while True:
            ready, _, _ = select.select([self.raw, self.tun], [], [])
            if self.tun in ready:
                packet = os.read(self.tun, 65536)
                if packet and packet[0] >> 4 == 4:
                    self.send_ppp(PPP_IP, packet)
            if self.raw in ready:
                frame, addr = self.raw.recvfrom(65536)
                if addr[2] == PACKET_OUTGOING or len(frame) < 20:
                    continue
                ethertype = struct.unpack_from("!H", frame, 12)[0]
                if ethertype not in (ETH_DISCOVERY, ETH_SESSION):
                    continue
                src = frame[6:12]
                _vt, code, session, length = struct.unpack_from("!BBHH", frame, 14)
                payload = frame[20 : 20 + length]
                if ethertype == ETH_DISCOVERY:
                    self.discovery(src, code, session, payload)
                elif src == self.client and session == self.session:
                    self.ppp(payload)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    ac = Concentrator(*sys.argv[1:])

    def stop(_sig, _frame):
        ac.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    ac.run()


if __name__ == "__main__":
    main()
