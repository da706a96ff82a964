#!/usr/bin/env python3
"""sessions.py - FTPS sessions held through the VIP across an event (a
crash, a power-off, a handover), and short connections run across one:
the measuring clients of the connection-mirroring drills (drill-mirror.sh).

  sessions.py [--tls-max 1.3] hold HOST --count 30 --go PREFIX [--rounds 1]
  sessions.py [--tls-max 1.3] load HOST --loops 64 --seconds 10 --mark FILE
  sessions.py [--tls-max 1.3] put HOST FILE upload/NAME [--rate 8388608]
  sessions.py [--tls-max 1.3] sticky HOST --source A,B,... --stop FILE [--seconds 600]

hold: N control sessions, two thirds explicit (port 21, AUTH TLS, PROT P),
one third implicit (990), anonymous.  Phase 1 opens them all, logs in, LISTs
and RETRs server.txt on each (the real server's name), remembers the name,
the control socket and its TLS session, then prints one JSON line
{"phase": "ready", ...} (also written to --ready FILE if given).  Then, for
each round k = 1..--rounds, it waits (at most --max-wait s) for the
trigger: the file PREFIX.k appearing, or the k-th SIGUSR1; phase 2 runs on
the SAME control connection of every session: LIST and RETR server.txt
again (new data connections, which must resume the control TLS session),
checking the same real server answers and the control connection still
carries the same TLS session.  Each round prints one JSON line
{"phase": 2, "round": k, "sessions": N, "survived": K, "failed": [...]}.
Exit 0 only when K == N in every round.

load: L loops, each making short connections to HOST:21 one after another
(connect, read the 220, hold --hold-ms, QUIT, read the 221) until
--seconds pass; every attempt's start, end, outcome and longest single
network wait are recorded.  The drill writes the event's wall-clock time
(ms since the epoch) into --mark FILE; at the end one JSON line reports
the attempts in flight at that instant and begun after it, the longest
one, and every attempt that ended after the mark whose network wait passed
--deadline-ms (2000): a hang.  Exit 0 only when there is none.

put: one upload (explicit FTPS), rate-limited; when its data connection
breaks, the failed STOR's reply is read on the SAME control connection,
then SIZE, REST and STOR go on there (at most --retries times).  One JSON
line: logins (always 1: it never logs in again), tries, REST offsets,
whether the control connection stayed the same.  lftp cannot do this for
an upload (see cmd_put), hence this client.

sticky: one short explicit FTPS session after another (AUTH TLS, PROT P,
login, RETR server.txt, QUIT), each from the next --source address in turn,
--par at a time with --gap-ms between a worker's sessions, until --stop
FILE exists or --seconds pass: one JSON line per session {"t0", "t1",
"src", "server" (server.txt, null on failure), "error"}, then a summary
line {"phase": "done", ...}.  The chaos run checks from them that each
client keeps its real server (sticky) across every fault.

Every network wait has a timeout and every loop a bound; stdlib only.
"""

import argparse
import ftplib
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True		# no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from ftpsclient import ReuseFTP_TLS, tls_context	# noqa: E402

MAX_SESSIONS = 256		# bound on --count
MAX_LOOPS = 256			# bound on --loops
MAX_ATTEMPTS = 10000		# bound on the attempts of one loop
MAX_ROUNDS = 8			# bound on --rounds
MAX_WAIT_S = 600.0		# bound on --max-wait and --seconds
PUT_CHUNK = 64 * 1024		# STOR block size
# Sessions at work at once (hold, both phases). vsftpd binds each PASV's
# listener to a random port of its range, 10 tries, then ends the session
# with a plain-text "500 OOPS: vsf_sysutil_bind" (a TLS client reads it as
# WRONG_VERSION_NUMBER): with 20 sessions of one client address on one real
# server and the rig's 28 passive ports, about 1 PASV in 30 failed so.
PAR = 4


def now_ms():
    """Wall clock in ms since the epoch (what the drill's rig_ms says)."""
    return int(time.time() * 1000)


def err_text(e):
    """One short line for an exception."""
    t = str(e).strip().replace("\n", " ")
    return "%s: %s" % (type(e).__name__, t[:120]) if t else type(e).__name__


def run_all(fn, items, par):
    """Runs fn(item) for every item, at most par at a time, in threads;
    returns once all have ended (each one bounded by its own timeouts)."""
    sem = threading.Semaphore(max(1, par))
    threads = []

    def one(it):
        with sem:
            fn(it)
    for it in items:
        t = threading.Thread(target=one, args=(it,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


# ---------------------------------------------------------------- hold

class Session:
    """One held control session and what phase 1 saw on it."""

    def __init__(self, i, implicit, source):
        self.i = i
        self.mode = "implicit" if implicit else "explicit"
        self.implicit = implicit
        self.source = source		# source address or None
        self.ftp = None
        self.server = None		# server.txt in phase 1
        self.sock = None		# the control SSLSocket of phase 1
        self.sess_id = None		# its TLS session id after phase 1
        self.lport = None		# its local port
        self.error = None		# first failure, once failed
        self.round_ms = None		# duration of the last phase 2

    def fail(self, what, e):
        if self.error is None:
            self.error = "%s: %s" % (what, err_text(e) if isinstance(e, BaseException) else e)

    def record(self):
        out = {"i": self.i, "mode": self.mode, "error": self.error}
        if self.source:
            out["src"] = self.source
        if self.lport:
            out["port"] = self.lport
        return out


def list_and_get(ftp):
    """LIST and RETR server.txt on one session; returns (entries, name)."""
    lines = []
    ftp.retrlines("LIST", lines.append)
    buf = []
    ftp.retrbinary("RETR server.txt", buf.append)
    return len(lines), b"".join(buf).decode(errors="replace").strip()


def phase1(s, args):
    ctx = tls_context(args.tls_max)
    try:
        ftp = ReuseFTP_TLS(ctx, implicit=s.implicit, timeout=args.timeout)
        ftp.connect(args.host, 990 if s.implicit else 21,
                    source_address=(s.source, 0) if s.source else None)
        s.ftp = ftp
        ftp.login()
        ftp.prot_p()
        n, name = list_and_get(ftp)
    except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
        s.fail("phase 1", e)
        return
    if n < 1:
        s.fail("phase 1", "LIST returned nothing")
    elif name not in ("FTP_SVR1", "FTP_SVR2"):
        s.fail("phase 1", "server.txt says %r" % name)
    elif not all(ftp.data_reused):
        s.fail("phase 1", "a data connection did not resume the TLS session")
    s.server = name
    s.sock = ftp.sock
    s.sess_id = ftp.sock.session.id if ftp.sock.session else None
    s.lport = ftp.sock.getsockname()[1]


def phase2(s, args, k):
    """Round k of phase 2 on session s (a failed session stays failed)."""
    if s.error is not None:
        return
    t0 = time.monotonic()
    ftp = s.ftp
    reused0 = len(ftp.data_reused)
    try:
        n, name = list_and_get(ftp)
    except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
        s.fail("round %d (%s)" % (k, ftp.stage), e)
        return
    finally:
        s.round_ms = int((time.monotonic() - t0) * 1000)
    sess = ftp.sock.session
    if n < 1:
        s.fail("round %d" % k, "LIST returned nothing")
    elif name != s.server:
        s.fail("round %d" % k, "server.txt says %r, was %r: another real server" % (name, s.server))
    elif ftp.sock is not s.sock or ftp.sock.getsockname()[1] != s.lport:
        s.fail("round %d" % k, "the control connection changed")
    elif sess is None or sess.id != s.sess_id:
        s.fail("round %d" % k, "the control connection's TLS session changed")
    elif len(ftp.data_reused) != reused0 + 2 or not all(ftp.data_reused[reused0:]):
        s.fail("round %d" % k, "a data connection did not resume the TLS session")


def summary(sessions):
    """Servers and error texts, counted."""
    servers = {}
    errors = {}
    for s in sessions:
        if s.server:
            servers[s.server] = servers.get(s.server, 0) + 1
        if s.error:
            # Counted without the numbers that differ per session.
            key = s.error[:90]
            errors[key] = errors.get(key, 0) + 1
    return servers, errors


def top_error(errors):
    """The most common error text with its count, "" when none: one flat
    field a shell can read."""
    if not errors:
        return ""
    text, n = max(errors.items(), key=lambda kv: kv[1])
    more = len(errors) - 1
    return "%s (x%d%s)" % (text, n, ", +%d other kinds" % more if more else "")


def emit(out, path=None):
    line = json.dumps(out)
    print(line, flush=True)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(line + "\n")
        os.replace(tmp, path)


class Trigger:
    """Round k goes when PREFIX.k exists or k SIGUSR1 have arrived."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.usr1 = 0
        signal.signal(signal.SIGUSR1, self._sig)

    def _sig(self, _signo, _frame):
        self.usr1 += 1

    def wait(self, k, limit_s):
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            if self.usr1 >= k or (self.prefix and os.path.exists("%s.%d" % (self.prefix, k))):
                return True
            time.sleep(0.02)
        return False


def cmd_hold(args):
    n = max(1, min(args.count, MAX_SESSIONS))
    sources = [a for a in (args.source or "").split(",") if a]
    trig = Trigger(args.go)
    sessions = [Session(i, i % 3 == 2, sources[i % len(sources)] if sources else None)
                for i in range(n)]
    t0 = time.monotonic()
    run_all(lambda s: phase1(s, args), sessions, args.par)
    servers, errors = summary(sessions)
    opened = sum(1 for s in sessions if s.error is None)
    ready = {"phase": "ready", "sessions": n, "opened": opened,
             "explicit": sum(1 for s in sessions if not s.implicit),
             "implicit": sum(1 for s in sessions if s.implicit),
             "servers": servers, "errors": errors, "error_top": top_error(errors),
             "tls": sessions[0].sock.version() if sessions[0].sock else None,
             "elapsed_ms": int((time.monotonic() - t0) * 1000), "at_ms": now_ms()}
    emit(ready, args.ready)
    ok = opened == n
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    for k in range(1, rounds + 1):
        if not trig.wait(k, min(args.max_wait, MAX_WAIT_S)):
            for s in sessions:
                s.fail("round %d" % k, "no trigger within %gs" % args.max_wait)
        t0 = time.monotonic()
        at = now_ms()
        for s in sessions:
            s.round_ms = None
        run_all(lambda s: phase2(s, args, k), sessions, args.par)
        servers, errors = summary(sessions)
        survived = sum(1 for s in sessions if s.error is None)
        times = [s.round_ms for s in sessions if s.round_ms is not None]
        out = {"phase": 2, "round": k, "sessions": n, "survived": survived,
               "failed": [s.record() for s in sessions if s.error is not None],
               "errors": errors, "error_top": top_error(errors), "servers": servers,
               "same_server": all(s.error is None or "another real server" not in s.error
                                  for s in sessions),
               "slowest_ms": max(times) if times else None,
               "elapsed_ms": int((time.monotonic() - t0) * 1000), "at_ms": at}
        emit(out)
        ok = ok and survived == n
    for s in sessions:
        if s.ftp is None:
            continue
        try:
            if s.error is None:
                s.ftp.sock.settimeout(2.0)
                s.ftp.quit()
        except (OSError, EOFError, ftplib.Error, ssl.SSLError):
            pass
        s.ftp.close()
    return 0 if ok else 1


# ---------------------------------------------------------------- load

KINDS = ("refused", "reset", "timeout", "eof", "unreachable", "bad_reply", "other")


def classify(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno in (101, 113):	# ENETUNREACH, EHOSTUNREACH
        return "unreachable"
    return "other"


def read_line(sock, limit_s, maxlen=512):
    """Reads up to CRLF (bounded in time and size); returns the bytes,
    b"" on EOF."""
    sock.settimeout(limit_s)
    buf = b""
    end = time.monotonic() + limit_s
    while b"\n" not in buf and len(buf) < maxlen:
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete line within %gs" % limit_s)
        sock.settimeout(left)
        b = sock.recv(maxlen - len(buf))
        if not b:
            return buf
        buf += b
    return buf


def attempt(args, source):
    """One short connection.  Returns (outcome, step, max_wait_ms)."""
    waits = []
    step = "connect"
    s = None
    try:
        t = time.monotonic()
        s = socket.create_connection((args.host, args.port), args.attempt_timeout,
                                     source_address=(source, 0) if source else None)
        waits.append(time.monotonic() - t)
        step = "greeting"
        t = time.monotonic()
        line = read_line(s, args.attempt_timeout)
        waits.append(time.monotonic() - t)
        if not line:
            return "eof", step, waits
        if not line.startswith(b"220"):
            return "bad_reply", step, waits
        if args.hold_ms > 0:
            time.sleep(args.hold_ms / 1000.0)
        step = "quit"
        t = time.monotonic()
        s.sendall(b"QUIT\r\n")
        line = read_line(s, args.attempt_timeout)
        waits.append(time.monotonic() - t)
        if not line:
            return "eof", step, waits
        if not line.startswith(b"221"):
            return "bad_reply", step, waits
        return "ok", "done", waits
    except OSError as e:
        waits.append(time.monotonic() - t)
        return classify(e), step, waits
    finally:
        if s is not None:
            s.close()


def cmd_load(args):
    loops = max(1, min(args.loops, MAX_LOOPS))
    sources = [a for a in (args.source or "").split(",") if a]
    secs = min(args.seconds, MAX_WAIT_S)
    t_end = time.monotonic() + secs
    results = [[] for _ in range(loops)]

    def loop(li):
        src = sources[li % len(sources)] if sources else None
        # Staggered starts: the loops do not move in step.
        time.sleep((li * (args.hold_ms + args.gap_ms) / loops) / 1000.0)
        for _ in range(MAX_ATTEMPTS):
            if time.monotonic() >= t_end:
                break
            st = now_ms()
            outcome, step, waits = attempt(args, src)
            en = now_ms()
            results[li].append((st, en, outcome, step, int(max(waits) * 1000) if waits else 0))
            time.sleep(args.gap_ms / 1000.0)

    if args.ready:
        emit({"phase": "load", "loops": loops, "at_ms": now_ms()}, args.ready)
    run_all(loop, range(loops), loops)

    mark = None
    try:
        with open(args.mark, encoding="ascii") as f:
            mark = int(f.read().strip())
    except (OSError, ValueError, TypeError):
        pass
    allr = [(li, r) for li in range(loops) for r in results[li]]
    t0 = min((r[0] for _, r in allr), default=0)
    out = {"mode": "load", "loops": loops, "attempts": len(allr),
           "ok": sum(1 for _, r in allr if r[2] == "ok"),
           "failed": {k: sum(1 for _, r in allr if r[2] == k) for k in KINDS
                      if any(r[2] == k for _, r in allr)},
           "longest_ms": max((r[1] - r[0] for _, r in allr), default=0),
           "longest_wait_ms": max((r[4] for _, r in allr), default=0),
           "deadline_ms": args.deadline_ms, "hold_ms": args.hold_ms,
           "mark_ms": mark}
    if mark is None:
        out["error"] = "no mark in %s: the event's time is unknown" % args.mark
        emit(out)
        return 1
    after = [(li, r) for li, r in allr if r[1] >= mark]
    flight = [(li, r) for li, r in after if r[0] < mark]
    hung = [(li, r) for li, r in after if r[4] > args.deadline_ms]
    before_fail = [(li, r) for li, r in allr if r[1] < mark and r[2] != "ok"]
    out.update({
        "before_mark": len(allr) - len(after),
        "failed_before_mark": len(before_fail),
        "in_flight_at_mark": len(flight),
        "in_flight_ok": sum(1 for _, r in flight if r[2] == "ok"),
        "in_flight_outcomes": {k: sum(1 for _, r in flight if r[2] == k)
                               for k in set(r[2] for _, r in flight)},
        "begun_after_mark": len(after) - len(flight),
        "begun_after_ok": sum(1 for _, r in after if r[0] >= mark and r[2] == "ok"),
        "after_outcomes": {k: sum(1 for _, r in after if r[2] == k)
                           for k in set(r[2] for _, r in after)},
        "longest_after_mark_ms": max((r[1] - r[0] for _, r in after), default=0),
        "longest_wait_after_mark_ms": max((r[4] for _, r in after), default=0),
        "last_end_after_mark_ms": max((r[1] - mark for _, r in flight), default=0),
        "hung_count": len(hung),
        "hung": [{"loop": li, "start_ms": r[0] - mark, "ms": r[1] - r[0], "wait_ms": r[4],
                  "outcome": r[2], "step": r[3]} for li, r in hung[:12]],
        "first_start_ms": t0 - mark,
    })
    emit(out)
    return 0 if not hung and after else 1


# ---------------------------------------------------------------- sticky

MAX_STICKY = 100000		# bound on the sessions of one sticky run


def cmd_sticky(args):
    sources = [a for a in (args.source or "").split(",") if a]
    if not sources:
        emit({"phase": "done", "error": "no --source addresses"})
        return 1
    t_end = time.monotonic() + min(args.seconds, 24 * 3600.0)
    lock = threading.Lock()
    state = {"next": 0, "n": 0, "ok": 0}

    def stopped():
        return time.monotonic() >= t_end or os.path.exists(args.stop) or state["n"] >= MAX_STICKY

    def one_session(src):
        ctx = tls_context(args.tls_max)
        rec = {"t0": now_ms(), "src": src, "server": None, "error": None}
        ftp = ReuseFTP_TLS(ctx, implicit=False, timeout=args.timeout)
        try:
            ftp.connect(args.host, 21, source_address=(src, 0))
            ftp.login()
            ftp.prot_p()
            buf = []
            ftp.retrbinary("RETR server.txt", buf.append)
            rec["server"] = b"".join(buf).decode(errors="replace").strip()
            ftp.quit()
        except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
            rec["error"] = "%s: %s" % (ftp.stage, err_text(e))
        finally:
            ftp.close()
        rec["t1"] = now_ms()
        return rec

    def worker(_w):
        while not stopped():
            with lock:
                src = sources[state["next"] % len(sources)]
                state["next"] += 1
                state["n"] += 1
            rec = one_session(src)
            with lock:
                state["ok"] += rec["server"] is not None
                print(json.dumps(rec), flush=True)
            time.sleep(args.gap_ms / 1000.0)

    run_all(worker, range(max(1, min(args.par, 16))), 16)
    emit({"phase": "done", "sessions": state["n"], "ok": state["ok"], "clients": len(sources)})
    return 0


# ---------------------------------------------------------------- put

def send_file(conn, f, rate, offset, state):
    """Sends f from offset over the data connection, at most rate bytes/s;
    counts into state["sent"].  Raises what the data connection raises."""
    t0 = time.monotonic()
    sent = 0
    f.seek(offset)
    for _ in range(1 << 20):		# 64 GiB at CHUNK: bounded
        b = f.read(PUT_CHUNK)
        if not b:
            return
        conn.sendall(b)
        sent += len(b)
        state["sent"] = offset + sent
        ahead = sent / rate - (time.monotonic() - t0) if rate > 0 else 0
        if ahead > 0:
            time.sleep(min(ahead, 1.0))


def cmd_put(args):
    """STOR a file, rate-limited; when the data connection breaks, read
    the failed STOR's reply on the SAME control connection, ask SIZE and
    go on with REST + STOR there: never a second login.  lftp cannot do
    this for uploads: a data error while the STOR's reply is outstanding
    makes it drop the control connection (src/ftpclass.cc, mode STORE ->
    DisconnectNow), so its uploads always log in again."""
    ftp = ReuseFTP_TLS(tls_context(args.tls_max), timeout=args.timeout)
    out = {"logins": 0, "tries": [], "ok": False}
    t0 = time.monotonic()
    try:
        ftp.connect(args.host, 21)
        ftp.login()
        out["logins"] = 1
        ftp.prot_p()
        ftp.voidcmd("TYPE I")
    except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
        out["error"] = "login: " + err_text(e)
        return out
    ctrl = ftp.sock
    offset = 0
    with open(args.file, "rb") as f:
        for _ in range(max(1, min(args.retries + 1, 20))):
            state = {"sent": offset}
            tr = {"rest": offset, "at_ms": now_ms()}
            out["tries"].append(tr)
            try:
                conn = ftp.transfercmd("STOR " + args.name, rest=offset or None)
            except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
                tr["error"] = "STOR: " + err_text(e)
                out["error"] = "control connection: " + tr["error"]
                break
            try:
                send_file(conn, f, args.rate, offset, state)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
                conn.close()
                conn = None
            except (OSError, ssl.SSLError) as e:
                tr["data_error"] = err_text(e)
                tr["sent"] = state["sent"]
                try:
                    conn.close()
                except OSError:
                    pass
            if "data_error" not in tr:
                try:
                    tr["reply"] = ftp.voidresp()[:60]
                except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
                    tr["error"] = "after the data: " + err_text(e)
                    out["error"] = "control connection: " + tr["error"]
                    break
                out["ok"] = True
                break
            # The failed STOR's final reply (426/451) on the same control
            # connection, then where the server stands.
            t = time.monotonic()
            try:
                tr["reply"] = ftp.getresp()[:60]
            except ftplib.Error as e:
                tr["reply"] = str(e)[:60]
            except (OSError, EOFError, ssl.SSLError) as e:
                tr["error"] = "waiting for the STOR's reply: " + err_text(e)
                out["error"] = "control connection: " + tr["error"]
                break
            tr["reply_ms"] = int((time.monotonic() - t) * 1000)
            try:
                offset = ftp.size(args.name)
            except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
                tr["error"] = "SIZE: " + err_text(e)
                out["error"] = "control connection: " + tr["error"]
                break
            tr["size"] = offset
    out["same_control"] = ftp.sock is ctrl
    out["rests"] = [tr["rest"] for tr in out["tries"] if tr["rest"] > 0]
    out["seconds"] = round(time.monotonic() - t0, 3)
    try:
        if out["ok"]:
            ftp.quit()
    except (OSError, EOFError, ftplib.Error, ssl.SSLError):
        pass
    ftp.close()
    out["ok"] = out["ok"] and out["same_control"]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tls-max", choices=["1.2", "1.3"], default="1.3")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("hold", help="sessions held across an event")
    sp.add_argument("host")
    sp.add_argument("--count", type=int, default=30, help="sessions (1/3 implicit)")
    sp.add_argument("--go", required=True, help="trigger prefix: round k runs once PREFIX.k exists")
    sp.add_argument("--rounds", type=int, default=1, help="phase-2 rounds (triggers)")
    sp.add_argument("--ready", help="also write the ready line to this file")
    sp.add_argument("--source", help="source addresses, comma separated, used in turn")
    sp.add_argument("--max-wait", type=float, default=60.0, help="longest wait for a trigger (s)")
    sp.add_argument("--timeout", type=float, default=10.0, help="any single network wait (s)")
    sp.add_argument("--par", type=int, default=PAR, help="sessions at work at once, in each phase")

    sp = sub.add_parser("load", help="short connections across an event")
    sp.add_argument("host")
    sp.add_argument("--port", type=int, default=21)
    sp.add_argument("--loops", type=int, default=64)
    sp.add_argument("--seconds", type=float, default=10.0, help="how long the loops run")
    sp.add_argument("--mark", required=True, help="file the drill writes the event's time into (ms)")
    sp.add_argument("--ready", help="file written once the loops start")
    sp.add_argument("--source", help="source addresses, comma separated, one per loop in turn")
    sp.add_argument("--hold-ms", type=int, default=1000, help="pause between the 220 and QUIT")
    sp.add_argument("--gap-ms", type=int, default=500, help="pause between attempts of a loop")
    sp.add_argument("--deadline-ms", type=int, default=2000, help="longest network wait allowed")
    sp.add_argument("--attempt-timeout", type=float, default=5.0, help="any single network wait (s)")
    sp = sub.add_parser("put", help="an upload resumed on the same control connection")
    sp.add_argument("host")
    sp.add_argument("file")
    sp.add_argument("name", help="path on the server, e.g. upload/x.bin")
    sp.add_argument("--rate", type=int, default=8 << 20, help="bytes/s, 0: unlimited")
    sp.add_argument("--retries", type=int, default=5, help="REST + STOR after a data error")
    sp.add_argument("--timeout", type=float, default=25.0, help="any single network wait (s)")
    sp = sub.add_parser("sticky", help="short FTPS sessions of many clients, in turn")
    sp.add_argument("host")
    sp.add_argument("--source", required=True, help="client addresses, comma separated, in turn")
    sp.add_argument("--stop", required=True, help="the run ends once this file exists")
    sp.add_argument("--seconds", type=float, default=600.0, help="or after this long")
    sp.add_argument("--par", type=int, default=2, help="sessions at once")
    sp.add_argument("--gap-ms", type=int, default=200, help="pause between a worker's sessions")
    sp.add_argument("--timeout", type=float, default=5.0, help="any single network wait (s)")
    args = p.parse_args()
    if args.cmd == "sticky":
        return cmd_sticky(args)
    if args.cmd == "hold":
        return cmd_hold(args)
    if args.cmd == "put":
        out = cmd_put(args)
        emit(out)
        return 0 if out["ok"] else 1
    return cmd_load(args)


if __name__ == "__main__":
    sys.exit(main())
