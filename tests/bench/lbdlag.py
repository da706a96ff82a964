#!/usr/bin/env python3
"""lbdlag.py - lbd's sticky replication lag measured the way hapcli.py
measures HAProxy's: one marker entry set on the source node every tick,
then the destination polled until it has it.

  lbdlag.py SRC_SOCK DST_SOCK SERVICE BACKEND SECS
        -> "lag1w: markers=N p50_ms=X p99_ms=X max_ms=X missing=N poll_p50_ms=X"

The lag of a marker runs from the source's reply to `sticky set` to the
first `sticky get` on the destination that shows it (polls every
POLL_S; a connection per request, as lbd's control socket serves one
request per connection).  Markers are 12.x.y.z, one every TICK_S; the
bench runs this beside stickyfill's paced load, so each marker queues
behind that traffic.  poll_p50_ms is the median time of one poll (the
request's own round trip): a lag at that figure means the marker was
there at the first poll, so the tool, not the replication, set it.
Every loop is bounded in time.
"""
import os
import sys
import time

sys.dont_write_bytecode = True		# no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from hapcli import cli, pct	# noqa: E402  (the same exchange and percentile)

POLL_S = 0.0005         # pause between two polls of the destination
TICK_S = 0.010          # one marker per tick
GIVE_UP_S = 2.0         # a marker not seen by then counts as missing


def req(sock, line):
    """One request on a fresh connection (lbd's control socket serves one)."""
    return cli(sock, line, 5.0)


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, svc, backend, secs = sys.argv[1:6]
    end = time.monotonic() + min(float(secs), 600.0)
    lags = []
    polls = []
    missing = 0
    i = 0
    while time.monotonic() < end and i < 60000:
        tick = time.monotonic()
        key = "12.%d.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
        i += 1
        if '"error"' in req(src, "sticky set %s %s %s" % (key, backend, svc)):
            missing += 1
            continue
        t0 = time.monotonic()
        seen = False
        while time.monotonic() - t0 < GIVE_UP_S:
            p0 = time.monotonic()
            r = req(dst, "sticky get %s %s" % (key, svc))
            polls.append((time.monotonic() - p0) * 1000.0)
            if ('"backend":"%s"' % backend) in r.replace(" ", ""):
                lags.append((time.monotonic() - t0) * 1000.0)
                seen = True
                break
            time.sleep(POLL_S)
        if not seen:
            missing += 1
        rest = TICK_S - (time.monotonic() - tick)
        if rest > 0:
            time.sleep(rest)
    lags.sort()
    poll50 = pct(polls, 50)
    if not lags:
        print("lag1w: markers=%d p50_ms=- p99_ms=- max_ms=- missing=%d poll_p50_ms=%.2f"
              % (i, missing, poll50))
        return 1
    p = lambda q: lags[min(len(lags) - 1, int(len(lags) * q))]
    print("lag1w: markers=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f missing=%d poll_p50_ms=%.2f"
          % (i, p(0.50), p(0.99), lags[-1], missing, poll50))
    return 0


if __name__ == "__main__":
    sys.exit(main())
