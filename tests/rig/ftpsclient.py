#!/usr/bin/env python3
"""ftpsclient.py - the rig's python FTPS client: ftplib sessions that resume
the control connection's TLS session on data connections (vsftpd
require_ssl_reuse), plus the misbehaving clients of the bad-input drill.

Every subcommand prints one JSON object on stdout and exits 0 on success,
1 on failure.  Every network wait has a timeout and every loop a bound.
"""

import argparse
import ftplib
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import time

TIMEOUT_S = 20.0		# any single network wait
CHUNK = 256 * 1024		# RETR block size


def tls_context(tls_max):
    """A client context for the rig's self-signed servers, capped at tls_max."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = {"1.2": ssl.TLSVersion.TLSv1_2,
                           "1.3": ssl.TLSVersion.TLSv1_3}[tls_max]
    return ctx


class ReuseFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control TLS session.

    Stock ftplib wraps each data socket in a fresh TLS session, which vsftpd
    with require_ssl_reuse=YES rejects ("522 SSL connection failed: session
    reuse required").  Passing session=self.sock.session makes the data
    handshake an abbreviated one.  With implicit=True the control connection
    is TLS from its first byte (port 990)."""

    def __init__(self, context, implicit=False, timeout=TIMEOUT_S):
        super().__init__(context=context, timeout=timeout)
        self.implicit = implicit
        self.data_reused = []		# session_reused of each data connection
        self.data_versions = []		# TLS version of each data connection
        self.data_sock = None		# the last data socket, for reset drills
        self.stage = "control"		# where a failure happened, for the drills' errors

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        if not self.implicit:
            return super().connect(host, port, timeout, source_address)
        if host:
            self.host = host
        if port:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        if source_address is not None:
            self.source_address = source_address	# data connections too
        raw = socket.create_connection((self.host, self.port), self.timeout,
                                       source_address=self.source_address)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def login(self, user="anonymous", passwd="", acct="", secure=True):
        if self.implicit:
            # Already TLS: plain FTP login, no AUTH TLS.
            return ftplib.FTP.login(self, user, passwd, acct)
        return super().login(user, passwd, acct, secure)

    def ntransfercmd(self, cmd, rest=None):
        self.stage = "control: " + cmd.split()[0]
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        self.stage = "data: TLS handshake"
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        self.stage = "data: " + cmd.split()[0]
        if self._prot_p:
            self.data_reused.append(conn.session_reused)
            self.data_versions.append(conn.version())
        self.data_sock = conn
        return conn, size

    def voidresp(self):
        self.stage = "control: transfer reply"
        return super().voidresp()


def session_open(args):
    """Connects, logs in anonymously and sets PROT P."""
    ftp = ReuseFTP_TLS(tls_context(args.tls_max), implicit=args.implicit)
    port = args.port or (990 if args.implicit else 21)
    ftp.connect(args.host, port)
    ftp.login()
    ftp.prot_p()
    return ftp


def cmd_session(args):
    """One control connection: LIST and RETR server.txt, several times each."""
    ftp = session_open(args)
    out = {"control_tls": ftp.sock.version(), "lists": [], "servers": []}
    for _ in range(args.lists):
        lines = []
        ftp.retrlines("LIST", lines.append)
        out["lists"].append(len(lines))
    for _ in range(args.retrs):
        buf = []
        ftp.retrbinary("RETR server.txt", buf.append)
        out["servers"].append(b"".join(buf).decode().strip())
    ftp.quit()
    out["data_reused"] = ftp.data_reused
    out["data_tls"] = ftp.data_versions
    out["ok"] = (len(ftp.data_reused) == args.lists + args.retrs
                 and all(ftp.data_reused)
                 and len(set(out["servers"])) == 1)
    return out


def wait_file(path, limit_s):
    """Waits (bounded) until path exists. Returns True when it does."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def cmd_hold(args):
    """A session across an event: LIST + RETR, touch READY, wait for GO, again."""
    ftp = session_open(args)
    servers = []
    lists = []
    for rnd in range(2):
        lines = []
        ftp.retrlines("LIST", lines.append)
        lists.append(len(lines))
        buf = []
        ftp.retrbinary("RETR server.txt", buf.append)
        servers.append(b"".join(buf).decode().strip())
        if rnd == 0:
            with open(args.ready, "w", encoding="ascii") as f:
                f.write("ready\n")
            if not wait_file(args.go, args.max_wait):
                return {"ok": False, "error": "no go file within %gs" % args.max_wait,
                        "servers": servers}
    ftp.quit()
    return {"servers": servers, "lists": lists, "data_reused": ftp.data_reused,
            "ok": all(ftp.data_reused) and len(set(servers)) == 1 and min(lists) > 0}


def cmd_get(args):
    """RETR one file; prints its size, sha256 and the transfer time."""
    ftp = session_open(args)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()

    def take(b):
        nonlocal n
        n += len(b)
        h.update(b)
    ftp.retrbinary("RETR " + args.path, take, blocksize=CHUNK)
    dt = time.monotonic() - t0
    ftp.quit()
    return {"bytes": n, "sha256": h.hexdigest(), "seconds": round(dt, 3),
            "data_reused": ftp.data_reused, "ok": all(ftp.data_reused)}


def cmd_put(args):
    """STOR a local file as upload/NAME."""
    ftp = session_open(args)
    t0 = time.monotonic()
    with open(args.file, "rb") as f:
        ftp.storbinary("STOR upload/" + args.name, f, blocksize=CHUNK)
    dt = time.monotonic() - t0
    ftp.quit()
    return {"seconds": round(dt, 3), "data_reused": ftp.data_reused,
            "ok": all(ftp.data_reused)}


def hard_close(sock):
    """Closes with SO_LINGER 0: the kernel sends RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        # An SSLSocket's close would try nothing TLS-level; detach-free close.
        sock.close()
    except OSError:
        pass


def cmd_reset(args):
    """Starts RETR of a big file, reads --after bytes, then resets both
    the data and the control connection (RST, no QUIT, no close_notify)."""
    ftp = session_open(args)
    conn, _ = ftp.ntransfercmd("RETR " + args.path)
    got = 0
    deadline = time.monotonic() + TIMEOUT_S
    while got < args.after and time.monotonic() < deadline:
        b = conn.recv(CHUNK)
        if not b:
            break
        got += len(b)
    hard_close(conn)
    hard_close(ftp.sock)
    return {"received": got, "ok": got >= args.after}


def cmd_idle(args):
    """Opens --count TCP connections that send nothing, holds them --hold
    seconds, then closes them."""
    socks = []
    failed = 0
    for _ in range(args.count):
        try:
            socks.append(socket.create_connection((args.host, args.port), 5))
        except OSError:
            failed += 1
    time.sleep(min(args.hold, 60.0))
    for s in socks:
        s.close()
    return {"opened": len(socks), "failed": failed, "ok": failed == 0}


def cmd_greet(args):
    """Opens --count TCP connections one after another, keeping each, and
    reads each one's first line (--timeout s): counts "220" greetings,
    connections closed or reset before one, and silent ones; holds them all
    --hold seconds, then closes them."""
    socks = []
    greeted = closed = silent = 0
    for _ in range(args.count):
        s = socket.create_connection((args.host, args.port), 5)
        socks.append(s)
        s.settimeout(args.timeout)
        try:
            line = s.recv(512)
        except socket.timeout:
            silent += 1
            continue
        except OSError:
            closed += 1
            continue
        if line.startswith(b"220"):
            greeted += 1
        else:
            closed += 1
    time.sleep(min(args.hold, 60.0))
    for s in socks:
        s.close()
    return {"greeted": greeted, "closed": closed, "silent": silent, "ok": True}


def cmd_garbage(args):
    """Sends --bytes random bytes, reads whatever comes back until the peer
    closes or TIMEOUT passes."""
    data = os.urandom(args.bytes)
    s = socket.create_connection((args.host, args.port), 5)
    s.settimeout(5)
    sent = 0
    try:
        s.sendall(data)
        sent = len(data)
    except OSError as e:
        sent = -1
        err = str(e)
    got = 0
    closed = False
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            got += len(b)
    except OSError:
        closed = True
    s.close()
    out = {"sent": sent, "received": got, "peer_closed": closed, "ok": True}
    if sent == -1:
        out["send_error"] = err
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tls-max", choices=["1.2", "1.3"], default="1.2")
    sub = p.add_subparsers(dest="cmd", required=True)

    def ftp_args(sp):
        sp.add_argument("host")
        sp.add_argument("--port", type=int, default=0)
        sp.add_argument("--implicit", action="store_true")

    sp = sub.add_parser("session")
    ftp_args(sp)
    sp.add_argument("--lists", type=int, default=2)
    sp.add_argument("--retrs", type=int, default=2)
    sp = sub.add_parser("hold")
    ftp_args(sp)
    sp.add_argument("ready")
    sp.add_argument("go")
    sp.add_argument("--max-wait", type=float, default=60.0)
    sp = sub.add_parser("get")
    ftp_args(sp)
    sp.add_argument("path")
    sp = sub.add_parser("put")
    ftp_args(sp)
    sp.add_argument("file")
    sp.add_argument("name")
    sp = sub.add_parser("reset")
    ftp_args(sp)
    sp.add_argument("--path", default="big.bin")
    sp.add_argument("--after", type=int, default=4 * 1024 * 1024)
    sp = sub.add_parser("idle")
    sp.add_argument("host")
    sp.add_argument("port", type=int)
    sp.add_argument("--count", type=int, default=50)
    sp.add_argument("--hold", type=float, default=0.0)
    sp = sub.add_parser("greet")
    sp.add_argument("host")
    sp.add_argument("port", type=int)
    sp.add_argument("--count", type=int, default=5)
    sp.add_argument("--hold", type=float, default=0.0)
    sp.add_argument("--timeout", type=float, default=3.0)
    sp = sub.add_parser("garbage")
    sp.add_argument("host")
    sp.add_argument("port", type=int)
    sp.add_argument("--bytes", type=int, default=65536)
    args = p.parse_args()

    fn = {"session": cmd_session, "hold": cmd_hold, "get": cmd_get, "put": cmd_put,
          "reset": cmd_reset, "idle": cmd_idle, "greet": cmd_greet,
          "garbage": cmd_garbage}[args.cmd]
    try:
        out = fn(args)
    except (OSError, EOFError, ftplib.Error, ssl.SSLError) as e:
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
