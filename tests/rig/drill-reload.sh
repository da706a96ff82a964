# drill-reload.sh - `lbctl reload` during a 64 MiB transfer with idle
# sessions held open: weight, check interval, timeouts and a new backend
# change live, nothing drops, the sticky table is kept; then a broken
# config (SIGHUP and lbctl) and a ports change are refused, lbd keeps the
# settings it had.  The original config is put back at the end, and the
# backend it removes drops out of the listing.

# Holds N TCP sessions to VIP:21 from the node it runs in: reads each 220
# greeting, prints "held N", waits (at most 60 s) for the file $1, then
# sends NOOP on each and prints "noop CODE..." (000 when one is gone).
_RELOAD_HOLDER='
import os, socket, sys, time
go, vip, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((vip, 21), timeout=5)
    s.recv(512)
    socks.append(s)
print("held %d" % len(socks), flush=True)
end = time.time() + 60
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.05)
codes = []
for s in socks:
    try:
        s.sendall(b"NOOP\r\n")
        r = s.recv(512).decode(errors="replace")
        codes.append(r[:3] if r else "000")
    except OSError:
        codes.append("000")
    s.close()
print("noop " + " ".join(codes), flush=True)
'

# "client=backend" of each sticky entry of lb1, sorted, one line.
_reload_sticky() {
	rig_lbctl lb1 --json sticky list 2>/dev/null | rig_jsplit | grep '"client"' |
		while IFS= read -r l; do
			printf '%s=%s\n' "$(rig_jval client <<<"$l")" "$(rig_jval backend <<<"$l")"
		done | sort | tr '\n' ' '
}

# "name:weight" of each backend of lb1, one line.
_reload_backends() {
	rig_lbctl lb1 --json backends 2>/dev/null | rig_jsplit | grep '"name"' |
		while IFS= read -r l; do
			printf '%s:%s ' "$(rig_jval name <<<"$l")" "$(rig_jval weight <<<"$l")"
		done
}

drill_reload() {
	local rc
	_reload_drill
	rc=$?
	# Whatever happened, lb1 gets its original config back (the reset
	# between drills does not rewrite it).
	if [ -f "$RIG_DIR/lb1.conf.orig" ]; then
		cp "$RIG_DIR/lb1.conf.orig" "$RIG_DIR/lb1.conf"
		rig_lbctl lb1 reload >/dev/null 2>&1
		rm -f "$RIG_DIR/lb1.conf.orig"
	fi
	return $rc
}

_reload_drill() {
	local conf=$RIG_DIR/lb1.conf orig=$RIG_DIR/lb1.conf.orig pid out rc t0 ms
	local go=$RIG_DIR/reload.go holdlog=$RIG_DIR/reload.hold big=$RIG_DIR/reload.big
	local sticky0 sticky1 be0 be1 s got line
	pid=$(rig_lb_pid lb1)
	cp "$conf" "$orig"
	rm -f "$go" "$holdlog" "$big"

	# Two sticky entries to keep.
	s=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "c1 session before the reload -> $s" rig_is_server "$s" || return 1
	got=$(rig_curl c2 explicit "$RIG_VIP" server.txt)
	rig_assert "c2 session before the reload -> $got" rig_is_server "$got" || return 1
	sticky0=$(_reload_sticky)
	be0=$(_reload_backends)
	echo "  figure: before: backends $be0; sticky $sticky0"

	# The transfer (rate-limited to 16 MB/s: about 4 s, so the reload
	# lands in its middle) and 3 idle sessions.
	rig_curl c1 explicit "$RIG_VIP" big.bin -o "$big" --max-time 60 --limit-rate 16M \
		-w '%{http_code} %{size_download} %{time_total}' >"$RIG_DIR/reload.curl" 2>&1 &
	local cpid=$!
	rig_exec c2 timeout 70 python3 -c "$_RELOAD_HOLDER" "$go" "$RIG_VIP" 3 >"$holdlog" 2>&1 &
	local hpid=$!
	rig_wait 5000 grep -q '^held 3' "$holdlog" ||
		{ rig_fail "3 idle sessions to VIP:21 ($(cat "$holdlog"))"; kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	rig_wait 5000 test -s "$big"
	local active0
	active0=$(rig_active_sum lb1)
	sleep 0.5
	local sz0
	sz0=$(stat -c %s "$big" 2>/dev/null || echo 0)

	# The new config: FTP_SVR2 weight 3, check interval 700 ms, idle and
	# connect timeouts changed, a new backend where nothing listens.
	sed -e 's/\(name = "FTP_SVR2";.*weight = \)1;/\13;/' \
		-e "s/interval_ms = $RIG_CHECK_INTERVAL_MS;/interval_ms = 700;/" \
		-e 's/idle_timeout_s = [0-9]*;/idle_timeout_s = 45;/' \
		-e 's/connect_timeout_ms = [0-9]*;/connect_timeout_ms = 2500;/' \
		-e "s/\(name = \"FTP_SVR2\";.*weight = 3; }\)$/\1,\n      { name = \"FTP_SVR3\"; address = \"$RIG_NET.52\"; weight = 1; }/" \
		"$orig" >"$conf"
	t0=$(rig_ms)
	out=$(rig_lbctl lb1 reload 2>&1)
	rc=$?
	ms=$(( $(rig_ms) - t0 ))
	echo "  figure: reload with $sz0 of $((RIG_BIG_MIB * 1048576)) bytes transferred, $active0 active: exit $rc in $ms ms ($out)"
	rig_assert "lbctl reload exits 0 (got $rc)" [ "$rc" = 0 ] || { kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	be1=$(_reload_backends)
	echo "  figure: after: backends $be1"
	rig_assert "backends show FTP_SVR3 (new) and FTP_SVR2 weight 3" \
		eval '[[ " $be1" == *" FTP_SVR3:1 "* && " $be1" == *" FTP_SVR2:3 "* ]]' || { kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	rig_assert "FTP_SVR3 (nothing listens) goes down by health check" \
		rig_wait 5000 rig_backend_is lb1 FTP_SVR3 down || { kill "$cpid" "$hpid" 2>/dev/null; return 1; }

	wait "$cpid"
	rc=$?
	local sha w
	w=$(cat "$RIG_DIR/reload.curl")
	sha=$(sha256sum "$big" 2>/dev/null | cut -d' ' -f1)
	echo "  figure: transfer across the reload: curl exit $rc, code/bytes/s: $w"
	rig_assert "the ${RIG_BIG_MIB} MiB transfer across the reload completes, sha256 matches" \
		[ "$rc" = 0 ] && [ "$sha" = "$RIG_BIG_SHA" ] || { kill "$hpid" 2>/dev/null; return 1; }
	rm -f "$big"
	touch "$go"
	wait "$hpid"
	line=$(grep '^noop' "$holdlog")
	# Before login vsftpd answers NOOP with 530 (FTPS required): any
	# reply shows the session is still spliced through.
	rig_assert "3 idle sessions held across the reload still answer NOOP ($line)" \
		eval '[[ $line =~ ^noop\ [0-9]{3}\ [0-9]{3}\ [0-9]{3}$ && $line != *000* ]]' || return 1
	sticky1=$(_reload_sticky)
	rig_assert "sticky entries unchanged by the reload ($sticky1)" [ "$sticky1" = "$sticky0" ] || return 1

	# A broken config: SIGHUP, then lbctl reload.
	local bad=$(( $(wc -l <"$orig") + 1 ))
	{ cat "$conf"; echo 'broken = = 1;'; } >"$conf.new" && mv "$conf.new" "$conf"
	kill -HUP "$pid"
	sleep 0.5
	rig_assert "SIGHUP with a broken config: lbd still runs" rig_alive lb1-lbd || return 1
	rig_assert "SIGHUP refusal logged" grep -q 'reload refused' "$RIG_DIR/lb1.log" || return 1
	bad=$(wc -l <"$conf")
	out=$(rig_lbctl lb1 reload 2>&1)
	rc=$?
	echo "  figure: broken config: lbctl reload exit $rc: $out"
	rig_assert "lbctl reload exits 1 (got $rc)" [ "$rc" = 1 ] || return 1
	rig_assert "the error names $conf:$bad" eval '[[ $out == *"$conf:$bad"* ]]' || return 1
	rig_assert "backends unchanged after the refused reload" [ "$(_reload_backends)" = "$be1" ] || return 1
	got=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "a new session after the refusal works, still on $s ($got)" [ "$got" = "$s" ] || return 1

	# A ports change needs a restart.
	sed 's/ports = \[ "21", /ports = [ "21", "2121", /' "$orig" >"$conf"
	out=$(rig_lbctl lb1 reload 2>&1)
	rc=$?
	echo "  figure: ports change: lbctl reload exit $rc: $out"
	rig_assert "ports change refused, exit 1, 'needs a restart'" \
		eval '[ "$rc" = 1 ] && [[ $out == *"needs a restart"* ]]' || return 1

	# Back to the original.
	cp "$orig" "$conf"
	out=$(rig_lbctl lb1 reload 2>&1)
	rc=$?
	rig_assert "original config reloaded (exit $rc)" [ "$rc" = 0 ] || return 1
	rig_assert "FTP_SVR2 weight back to 1 ($(_reload_backends))" \
		eval '[[ " $(_reload_backends)" == *" FTP_SVR2:1 "* ]]' || return 1
	# FTP_SVR3 left the config and never had a connection: no longer listed.
	rig_assert "FTP_SVR3, removed with no connection, is no longer listed ($(_reload_backends))" \
		eval '[[ " $(_reload_backends)" != *" FTP_SVR3:"* ]]' || return 1
	rig_assert "lbd pid unchanged across the drill" [ "$(rig_lb_pid lb1)" = "$pid" ] || return 1
	return 0
}
