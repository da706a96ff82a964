#!/usr/bin/env python3
"""sdnotify.py - plays systemd's side of sd_notify(3) for the rig and the
install tests: binds a NOTIFY_SOCKET, logs every datagram with its time and
sender pid (SO_PASSCRED, as systemd reads it), and, with --watchdog-ms,
does what systemd does when WatchdogSec= passes without WATCHDOG=1 once
the pings have begun: SIGABRT to the sender (WatchdogSignal=), SIGKILL
--abort-ms later if it still lives (TimeoutAbortSec=).

  sdnotify.py SOCKET LOG [--watchdog-ms N] [--abort-ms N] [--max-s N]

LOG lines: "MS PID MESSAGE" (newlines in a datagram become " | "), and
"MS - watchdog: ..." for what it did.  Exits after --max-s (default 120)
or once it killed the sender.
"""
import argparse
import os
import signal
import socket
import struct
import time


def now_ms():
    return int(time.time() * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("log")
    ap.add_argument("--watchdog-ms", type=int, default=0)
    ap.add_argument("--abort-ms", type=int, default=2000)
    ap.add_argument("--max-s", type=int, default=120)
    a = ap.parse_args()
    try:
        os.unlink(a.socket)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind(a.socket)
    log = open(a.log, "a", buffering=1)
    end = time.monotonic() + a.max_s
    last_ping = None
    pid = None
    ucred = struct.calcsize("3i")
    while time.monotonic() < end:
        s.settimeout(0.05)
        try:
            data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(ucred))
        except socket.timeout:
            data = None
        if data is not None:
            sender = "?"
            for lvl, typ, cd in anc:
                if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    sender = struct.unpack("3i", cd[:ucred])[0]
            msg = data.decode(errors="replace").strip().replace("\n", " | ")
            log.write("%d %s %s\n" % (now_ms(), sender, msg))
            if "WATCHDOG=1" in msg.split(" | "):
                last_ping = time.monotonic()
                pid = sender
        if (a.watchdog_ms and last_ping is not None and isinstance(pid, int) and
                (time.monotonic() - last_ping) * 1000 > a.watchdog_ms):
            log.write("%d - watchdog: no WATCHDOG=1 for %d ms: SIGABRT to %d\n" %
                      (now_ms(), a.watchdog_ms, pid))
            try:
                os.kill(pid, signal.SIGABRT)
            except ProcessLookupError:
                pass
            t = time.monotonic()
            while (time.monotonic() - t) * 1000 < a.abort_ms:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)
            else:
                log.write("%d - watchdog: %d still alive after %d ms: SIGKILL\n" %
                          (now_ms(), pid, a.abort_ms))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            log.write("%d - watchdog: %d ended\n" % (now_ms(), pid))
            break
    s.close()
    os.unlink(a.socket)


if __name__ == "__main__":
    main()
