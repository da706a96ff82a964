#!/usr/bin/env python3
"""slowclients.py - slow and greedy clients of lbd's metrics endpoint and
control socket, for drill-metrics.sh. All at once, each bounded in time:

  * N metrics clients that send a request a byte every INTERVAL seconds and
    never finish it; a normal scrape starts once they hold all 32 slots;
  * M `monitor` clients on the control socket, then `status` while they are
    open;
  * one control client that sends "status" a byte every INTERVAL seconds
    and never a newline.

Prints one "key value" line per figure. Usage:
  slowclients.py HOST:PORT SOCKET [N M INTERVAL LIMIT_S]
"""
import json
import select
import socket
import sys
import threading
import time

ADDR, SOCK = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 60
M = int(sys.argv[4]) if len(sys.argv) > 4 else 20
INTERVAL = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
LIMIT = float(sys.argv[6]) if len(sys.argv) > 6 else 16.0
HOST, PORT = ADDR.rsplit(":", 1)
HOST = HOST.strip("[]")
PORT = int(PORT)
T0 = time.monotonic()
out = {}
lock = threading.Lock()


def put(key, value):
    with lock:
        out[key] = value


def slow_metrics():
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
    conns, sent, closed, replied = [], [0] * N, {}, 0
    fam = socket.AF_INET6 if ":" in HOST else socket.AF_INET
    for _ in range(N):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((HOST, PORT))
        except BlockingIOError:
            pass
        conns.append(s)
    nxt = T0
    while time.monotonic() - T0 < LIMIT and len(closed) < N:
        if time.monotonic() >= nxt:
            for i, s in enumerate(conns):
                if i in closed:
                    continue
                c = head[sent[i]:sent[i] + 1] or b"a"
                try:
                    if s.send(c) == 1:
                        sent[i] += 1
                except OSError:
                    pass  # still connecting (backlog), or closed: recv says
            nxt += INTERVAL
        live = [s for i, s in enumerate(conns) if i not in closed]
        r, _, _ = select.select(live, [], [], 0.05)
        for s in r:
            i = conns.index(s)
            try:
                d = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                replied += 1
            else:
                closed[i] = time.monotonic() - T0
    times = sorted(closed.values())
    put("metrics_slow_closed", len(closed))
    put("metrics_slow_replied", replied)
    put("metrics_slow_first_close_s", "%.2f" % times[0] if times else "none")
    put("metrics_slow_last_close_s", "%.2f" % times[-1] if times else "none")
    put("metrics_slow_max_bytes", max(sent))
    for s in conns:
        s.close()


def metrics_connections():
    """metrics.connections of `status`, or -1."""
    try:
        s = unix()
        s.sendall(b"status\n")
        st = json.loads(readline(s))
        s.close()
        return (st.get("metrics") or {}).get("connections", -1)
    except (OSError, ValueError):
        return -1


def normal_scrape():
    # Once the slow clients hold every slot (SYN retries can take a few s).
    full = -1
    while time.monotonic() - T0 < LIMIT / 2:
        full = metrics_connections()
        if full >= 32:
            break
        time.sleep(0.05)
    put("metrics_full_at_s", "%.2f" % (time.monotonic() - T0))
    put("metrics_full_connections", full)
    t = time.monotonic()
    fam = socket.AF_INET6 if ":" in HOST else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(LIMIT)
    data = b""
    try:
        s.connect((HOST, PORT))
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        put("metrics_normal_error", str(e).replace(" ", "_"))
    s.close()
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    put("metrics_normal_status", line.split(" ")[1] if " " in line else "none")
    put("metrics_normal_s", "%.2f" % (time.monotonic() - t))


def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(SOCK)
    return s


def readline(s):
    data = b""
    try:
        while not data.endswith(b"\n"):
            d = s.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    return data.decode(errors="replace")


def monitors():
    opened, started, refused = [], 0, 0
    for _ in range(M):
        s = unix()
        s.sendall(b"monitor\n")
        line = readline(s)
        if '"monitor":"started"' in line:
            started += 1
            opened.append(s)
        else:
            if "too many monitors" in line:
                refused += 1
            s.close()
    t = time.monotonic()
    s = unix()
    s.sendall(b"status\n")
    try:
        st = json.loads(readline(s))
    except ValueError:
        st = {}
    s.close()
    ctl = st.get("control") or {}
    put("control_monitors_started", started)
    put("control_monitors_refused", refused)
    put("control_status_answered", 1 if "role" in st else 0)
    put("control_status_s", "%.3f" % (time.monotonic() - t))
    put("control_status_monitors", ctl.get("monitors", "none"))
    for s in opened:
        s.close()


def slow_control():
    s = unix()
    t, i, word, data = time.monotonic(), 0, b"statusstatusstatusstatus", b""
    s.setblocking(False)
    while time.monotonic() - t < LIMIT:
        if i < len(word) and time.monotonic() - t >= i * INTERVAL:
            try:
                s.send(word[i:i + 1])
            except OSError:
                pass
            i += 1
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if not d:
                break
            data += d
    put("control_slow_closed_s", "%.2f" % (time.monotonic() - t))
    put("control_slow_bytes", i)
    put("control_slow_timed_out", 1 if b"timed out waiting for a request line" in data else 0)
    s.close()


threads = [threading.Thread(target=f) for f in (slow_metrics, normal_scrape, monitors, slow_control)]
for th in threads:
    th.start()
for th in threads:
    th.join()
for k in sorted(out):
    print(k, out[k])
