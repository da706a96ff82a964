#!/usr/bin/env python3
"""hbtool.py - the rig's heartbeat attacker for the forged-traffic drill:
captures real lbd adverts off an interface, replays them, truncates them,
sends random datagrams, and seals adverts of its own with a given key.

Subcommands (each prints one JSON object on stdout, exits 0 on success):
  capture --iface eth0 --port 7411 --seconds 1.5 --out FILE
      AF_PACKET capture (run inside a node's namespace) of the UDP payloads
      to PORT; FILE gets one line per datagram: "SRC DST HEX".
  replay --host H --port P --file FILE [--src S] [--truncate N,...] [--gap-ms MS]
      sends each captured payload (only those from SRC if given) to H:P,
      as is or cut to each length N (negative N: that many bytes less),
      MS ms apart (default 2; the recording's own pace is the interval).
  garbage --host H --port P --count N
      N random datagrams of 0-1400 bytes whose first byte is not lbd's
      frame version (so every one is malformed), and N random datagrams
      shaped like a frame (version byte 1, 41-297 bytes: fail authentication).
  forge --host H --port P --key KEYFILE --node NAME --addr A [--count N]
      N adverts "NAME is MASTER, priority 254", sealed exactly as lbd seals
      them (XChaCha20-Poly1305, key derived with crypto_kdf "lbdadvrt"/1)
      but with KEYFILE's key: a wrong key must fail authentication; the
      right key with an unknown NAME must be counted as an unknown sender.

libsodium is used through ctypes (the Debian libsodium23 lbd links), so no
python package is needed.  Every loop is bounded.
"""

import argparse
import base64
import ctypes
import ctypes.util
import json
import os
import random
import socket
import struct
import sys
import time

FRAME_VERSION = 1		# heartbeat.c HB_FRAME_VERSION
NONCE_LEN = 24			# XChaCha20 nonce
TAG_LEN = 16			# Poly1305 tag
KDF_CONTEXT = b"lbdadvrt"	# heartbeat.c HB_KDF_CONTEXT
KDF_ID = 1			# heartbeat.c HB_KDF_ID
ETH_P_IP = 0x0800		# IPv4 ethertype
ETH_P_ALL = 0x0003		# every frame, outgoing ones included
MAX_DATAGRAMS = 10000		# bound on any capture or send loop
STATE_MASTER = 2		# enum ha_role


def out(obj, ok=True):
    print(json.dumps(obj))
    sys.exit(0 if ok else 1)


def sodium():
    name = ctypes.util.find_library("sodium") or "libsodium.so.23"
    lib = ctypes.CDLL(name)
    if lib.sodium_init() < 0:
        raise RuntimeError("sodium_init failed")
    return lib


def load_key(path):
    with open(path, "rb") as f:
        key = base64.b64decode(f.read().strip(), validate=True)
    if len(key) != 32:
        raise ValueError(f"{path}: not a 32-byte base64 key")
    return key


def varint(n):
    b = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            b.append(byte | 0x80)
        else:
            b.append(byte)
            return bytes(b)


def pb_field(num, wire, value):
    """One protobuf field: wire 0 varint, 2 length-delimited."""
    if wire == 0:
        return varint(num << 3) + varint(value)
    return varint((num << 3) | 2) + varint(len(value)) + value


def advert(node, priority, state, interval_ms, boot_id, counter, addr):
    """A packed lbd.Advert (proto/hasync.proto)."""
    a16 = b"\0" * 10 + b"\xff\xff" + socket.inet_aton(addr)
    return (pb_field(1, 2, node.encode()) + pb_field(2, 0, priority) +
            pb_field(3, 0, state) + pb_field(4, 0, interval_ms) +
            pb_field(5, 0, boot_id) + pb_field(6, 0, counter) +
            pb_field(7, 0, 1) + pb_field(8, 0, 1) + pb_field(9, 2, a16))


def seal(lib, cluster_key, plain):
    """version | nonce | ciphertext+tag, as heartbeat.c builds a frame."""
    sub = ctypes.create_string_buffer(32)
    if lib.crypto_kdf_derive_from_key(sub, ctypes.c_size_t(32), ctypes.c_uint64(KDF_ID),
                                      ctypes.c_char_p(KDF_CONTEXT), cluster_key) != 0:
        raise RuntimeError("crypto_kdf_derive_from_key failed")
    nonce = os.urandom(NONCE_LEN)
    ad = bytes([FRAME_VERSION])
    c = ctypes.create_string_buffer(len(plain) + TAG_LEN)
    clen = ctypes.c_ulonglong(0)
    if lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
            c, ctypes.byref(clen), plain, ctypes.c_ulonglong(len(plain)),
            ad, ctypes.c_ulonglong(len(ad)), None, nonce, sub.raw) != 0:
        raise RuntimeError("encrypt failed")
    return ad + nonce + c.raw[:clen.value]


def udp_socket():
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def cmd_capture(a):
    # ETH_P_ALL: protocol-specific packet sockets do not see outgoing frames.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.bind((a.iface, ETH_P_ALL))
    s.settimeout(0.05)
    end = time.monotonic() + a.seconds
    got = []
    while time.monotonic() < end and len(got) < MAX_DATAGRAMS:
        try:
            pkt, sll = s.recvfrom(65535)
        except socket.timeout:
            continue
        if sll[1] != ETH_P_IP or len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_UDP:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) < ihl + 8:
            continue
        sport, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
        if dport != a.port:
            continue
        payload = pkt[ihl + 8:ihl + ulen]
        got.append((socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]),
                    payload.hex()))
    with open(a.out, "w") as f:
        for src, dst, h in got:
            f.write(f"{src} {dst} {h}\n")
    srcs = {}
    for src, _, _ in got:
        srcs[src] = srcs.get(src, 0) + 1
    out({"captured": len(got), "by_source": srcs}, ok=len(got) > 0)


def read_capture(path, src):
    frames = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3 or (src and parts[0] != src):
                continue
            frames.append(bytes.fromhex(parts[2]))
            if len(frames) >= MAX_DATAGRAMS:
                break
    return frames


def cmd_replay(a):
    frames = read_capture(a.file, a.src)
    if not frames:
        out({"error": f"no captured frames from {a.src or 'anyone'} in {a.file}"}, ok=False)
    s = udp_socket()
    sent = 0
    lengths = []
    cuts = [int(x) for x in a.truncate.split(",")] if a.truncate else [None]
    for fr in frames[:a.max]:
        for cut in cuts:
            if cut is None:
                data = fr
            elif cut < 0:
                data = fr[:max(0, len(fr) + cut)]
            else:
                data = fr[:cut]
            s.sendto(data, (a.host, a.port))
            lengths.append(len(data))
            sent += 1
            time.sleep(a.gap_ms / 1000)
    out({"sent": sent, "lengths": sorted(set(lengths))})


def cmd_garbage(a):
    s = udp_socket()
    rnd = random.Random()
    malformed = framelike = 0
    for _ in range(min(a.count, MAX_DATAGRAMS)):
        n = rnd.randint(0, 1400)
        data = bytearray(os.urandom(n))
        if n:
            data[0] = rnd.choice([b for b in range(256) if b != FRAME_VERSION])
        s.sendto(bytes(data), (a.host, a.port))
        malformed += 1
        n = rnd.randint(1 + NONCE_LEN + TAG_LEN, 1 + NONCE_LEN + 256 + TAG_LEN)
        data = bytes([FRAME_VERSION]) + os.urandom(n - 1)
        s.sendto(data, (a.host, a.port))
        framelike += 1
        time.sleep(0.002)
    out({"malformed_sent": malformed, "framelike_sent": framelike})


def cmd_forge(a):
    lib = sodium()
    key = load_key(a.key)
    s = udp_socket()
    # A boot id far in the future: accepted as "newer" if the key were right.
    boot = time.time_ns() + 10**15
    sizes = set()
    for i in range(min(a.count, MAX_DATAGRAMS)):
        fr = seal(lib, key, advert(a.node, 254, STATE_MASTER, a.interval, boot, i + 1, a.addr))
        s.sendto(fr, (a.host, a.port))
        sizes.add(len(fr))
        time.sleep(0.002)
    out({"forged_sent": min(a.count, MAX_DATAGRAMS), "node": a.node, "sizes": sorted(sizes)})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("--iface", default="eth0")
    c.add_argument("--port", type=int, default=7411)
    c.add_argument("--seconds", type=float, default=1.0)
    c.add_argument("--out", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--host", required=True)
    r.add_argument("--port", type=int, default=7411)
    r.add_argument("--file", required=True)
    r.add_argument("--src", default="")
    r.add_argument("--truncate", default="")
    r.add_argument("--max", type=int, default=50)
    r.add_argument("--gap-ms", type=float, default=2.0)
    g = sub.add_parser("garbage")
    g.add_argument("--host", required=True)
    g.add_argument("--port", type=int, default=7411)
    g.add_argument("--count", type=int, default=20)
    f = sub.add_parser("forge")
    f.add_argument("--host", required=True)
    f.add_argument("--port", type=int, default=7411)
    f.add_argument("--key", required=True)
    f.add_argument("--node", required=True)
    f.add_argument("--addr", required=True)
    f.add_argument("--interval", type=int, default=100)
    f.add_argument("--count", type=int, default=20)
    a = p.parse_args()
    {"capture": cmd_capture, "replay": cmd_replay, "garbage": cmd_garbage,
     "forge": cmd_forge}[a.cmd](a)


if __name__ == "__main__":
    main()
