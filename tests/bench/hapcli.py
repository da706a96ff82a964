#!/usr/bin/env python3
"""hapcli.py - drives HAProxy's stats socket for the bench's stick-table rows:
fills a table, waits for a peer's table to reach a size, and measures peer
replication lag at a fixed update rate.

  hapcli.py fill SOCK TABLE N                    -> "fill: entries=N ms=T"
  hapcli.py wait SOCK TABLE N TIMEOUT_MS
        -> "wait: used=N ms=T ok=0|1 done_epoch_ms=E" (E: wall clock when seen full)
  hapcli.py lag SRC_SOCK DST_SOCK TABLE RATE SECS [NET]
        -> "lag: batches=N updates=N p50_ms=X p99_ms=X max_ms=X missing=N poll_p50_ms=X"

Keys are IPv4 addresses in 10/8 (fill) and NET/8 (lag; 11 by default:
each lag run needs a NET of its own, new keys), server_id 1.  A lag
is measured per batch of RATE/100 keys sent every 10 ms: from the source's
reply to the first poll of the destination that counts the batch.  Every
loop is bounded in time.
"""
import socket
import sys
import time

BATCH = 300             # "set table" commands per CLI line (one line < 16 KiB)
POLL_S = 0.0005         # pause between two polls of the destination
TICK_S = 0.010          # lag: one batch per tick


def cli(sock, line, timeout=10.0):
    """Sends one CLI line on a fresh connection, returns the whole reply."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        for _ in range(1000):       # a full backlog (EAGAIN): again, 1 s at most
            try:
                s.connect(sock)
                break
            except BlockingIOError:
                time.sleep(0.001)
        else:
            raise OSError("%s: backlog full for 1 s" % sock)
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        return out.decode(errors="replace")
    finally:
        s.close()


def used(sock, table):
    """Entries in TABLE, from the one-line-per-table "show table" (no rows)."""
    r = cli(sock, "show table", timeout=2.0)
    for line in r.splitlines():
        if not line.startswith("# table: %s," % table):
            continue
        for part in line.split(","):
            part = part.strip()
            if part.startswith("used:"):
                return int(part[5:])
    raise RuntimeError("no 'used:' for %s in reply: %r" % (table, r[:200]))


def key(net, i):
    return "%d.%d.%d.%d" % (net, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def setcmds(table, net, first, count):
    return ";".join("set table %s key %s data.server_id 1" % (table, key(net, i))
                    for i in range(first, first + count))


def do_fill(sock, table, n):
    t0 = time.monotonic()
    for b in range(0, n, BATCH):
        r = cli(sock, setcmds(table, 10, b, min(BATCH, n - b)))
        if r.strip():
            sys.exit("hapcli: set table failed: %s" % r.strip()[:200])
    print("fill: entries=%d ms=%d" % (n, (time.monotonic() - t0) * 1000))


def do_wait(sock, table, n, timeout_ms):
    t0 = time.monotonic()
    u = -1
    while (time.monotonic() - t0) * 1000 < timeout_ms:
        try:
            u = used(sock, table)
        except (OSError, RuntimeError):
            u = -1                  # not up yet
        if u >= n:
            print("wait: used=%d ms=%d ok=1 done_epoch_ms=%d" %
                  (u, (time.monotonic() - t0) * 1000, time.time() * 1000))
            return
        time.sleep(0.02)
    print("wait: used=%d ms=%d ok=0 done_epoch_ms=0" % (u, (time.monotonic() - t0) * 1000))


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * (len(v) - 1) + 0.5))]


def do_lag(src, dst, table, rate, secs, net):
    per = max(1, rate // 100)
    base = used(dst, table)
    sent = []                       # per batch: time the source acknowledged it
    lags = []
    polls = []                      # each poll's own round trip
    next_t = t0 = time.monotonic()
    seen = 0                        # batches counted at the destination
    i = 0
    while time.monotonic() - t0 < secs + 2:
        now = time.monotonic()
        if now >= next_t and now - t0 < secs:
            cli(src, setcmds(table, net, i * per, per))
            sent.append(time.monotonic())
            i += 1
            next_t += TICK_S
            continue
        if seen == len(sent) and now - t0 >= secs:
            break
        p0 = time.monotonic()
        u = used(dst, table) - base
        t = time.monotonic()
        polls.append((t - p0) * 1000)
        while seen < len(sent) and u >= (seen + 1) * per:
            lags.append((t - sent[seen]) * 1000)
            seen += 1
        time.sleep(POLL_S)
    print("lag: batches=%d updates=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f missing=%d poll_p50_ms=%.2f" %
          (len(sent), len(sent) * per, pct(lags, 50), pct(lags, 99),
           max(lags) if lags else 0.0, len(sent) - seen, pct(polls, 50)))


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "fill":
        do_fill(a[1], a[2], int(a[3]))
    elif len(a) == 5 and a[0] == "wait":
        do_wait(a[1], a[2], int(a[3]), int(a[4]))
    elif len(a) in (6, 7) and a[0] == "lag":
        do_lag(a[1], a[2], a[3], int(a[4]), float(a[5]), int(a[6]) if len(a) == 7 else 11)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
