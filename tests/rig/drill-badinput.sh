# drill-badinput.sh - lbd meets garbage on its control socket and on the
# VIP, idle and vanishing clients, and a client that resets mid-transfer;
# afterwards it is alive, still serves, and its fd count (the relay's
# spare pipes aside) is back.

# Smallest fd count of lbd on NODE but its pipes, over a few samples:
# health checks open and close sockets every interval, so a single sample
# can catch one; two transfers that overlap here leave one more spare pipe
# pair in the relay's pool, which is reuse, not a leak.
_fds_min() {
	local i n min=
	for ((i = 0; i < 8; i++)); do
		n=$(rig_lb_fds "$1" nopipes)
		[ -z "$min" ] || [ "$n" -lt "$min" ] && min=$n
		sleep 0.03
	done
	echo "$min"
}

_fds_back() { [ "$(_fds_min lb1)" -le "$1" ]; }

# Sends a line to the control socket and prints the reply.
_ctl_raw() { timeout 5 socat -t 3 - "UNIX-CONNECT:$(rig_sock lb1)"; }

_is_error_json() { [ -n "$(rig_jval error <<<"$1")" ]; }

_active_zero() { [ "$(rig_active_sum lb1)" = 0 ]; }

drill_badinput() {
	local before after r pid
	pid=$(rig_lb_pid lb1)
	rig_wait 10000 _active_zero
	before=$(_fds_min lb1)
	echo "  lbd pid $pid, fds before: $before"

	# --- control socket.
	r=$(echo garbage | _ctl_raw)
	rig_assert "control: 'garbage' -> $r" _is_error_json "$r" || return 1
	r=$(head -c 4096 /dev/urandom | tr -d '\n' | _ctl_raw)
	rig_assert "control: 4 KiB binary line -> error JSON or close (${r:0:60})" \
		eval '[ -z "$r" ] || _is_error_json "$r"' || return 1
	r=$(printf 'sticky get not-an-ip\n' | _ctl_raw)
	rig_assert "control: sticky get not-an-ip -> $r" _is_error_json "$r" || return 1
	r=$(printf 'backend FTP_SVR1 explode\n' | _ctl_raw)
	rig_assert "control: backend FTP_SVR1 explode -> $r" _is_error_json "$r" || return 1
	r=$(printf '' | _ctl_raw)
	rig_assert "control: empty connection closed, lbd alive" rig_pid_running "$pid" || return 1

	# --- random bytes to the VIP's ports.
	local port out
	for port in 21 990 1030; do
		out=$(rig_py c1 garbage "$RIG_VIP" $port --bytes 65536)
		rig_assert "64 KiB random to VIP:$port: $out" rig_pid_running "$pid" || return 1
	done

	# --- 50 clients that connect and send nothing, 10 that hold 3 s.
	rig_py c2 idle "$RIG_VIP" 21 --count 10 --hold 3 >"$RIG_DIR/idle-hold.out" &
	local holdpid=$!
	out=$(rig_py c1 idle "$RIG_VIP" 21 --count 50 --hold 0)
	rig_assert "50 silent clients on VIP:21: $out" \
		[ "$(rig_jval ok <<<"$out")" = true ] || return 1
	out=$(rig_py c1 idle "$RIG_VIP" 990 --count 20 --hold 0.5)
	rig_assert "20 silent clients on VIP:990: $out" \
		[ "$(rig_jval ok <<<"$out")" = true ] || return 1

	# --- resets in the middle of a 64 MiB transfer.
	out=$(rig_py c1 reset "$RIG_VIP" --after $((4 * 1024 * 1024)))
	rig_assert "python RETR big.bin via VIP, RST after 4 MiB: $out" \
		[ "$(rig_jval ok <<<"$out")" = true ] || return 1
	rig_bg c1 curlkill "$RIG_DIR/curlkill.log" \
		curl -s -k --tls-max "$RIG_TLS_MAX" --max-time 30 --limit-rate 8M \
		--ssl-reqd -o /dev/null "ftp://$RIG_VIP/big.bin"
	sleep 1
	rig_assert "curl mid-transfer is running" rig_alive curlkill || return 1
	rig_kill curlkill KILL
	local i
	for ((i = 0; i < 100; i++)); do kill -0 $holdpid 2>/dev/null || break; sleep 0.1; done
	wait $holdpid
	rig_assert "10 clients held 3 s: $(cat "$RIG_DIR/idle-hold.out")" \
		grep -q '"ok": true' "$RIG_DIR/idle-hold.out" || return 1

	# --- afterwards.
	rig_assert "lbd (pid $pid) alive" rig_pid_running "$pid" || return 1
	r=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "a normal session still works ($r)" rig_is_server "$r" || return 1
	local t0
	t0=$(rig_ms)
	rig_wait 10000 _active_zero
	rig_wait 10000 _fds_back "$before"
	after=$(_fds_min lb1)
	echo "  figure: fds but pipes before $before after $after (settled in $(( $(rig_ms) - t0 )) ms); all fds now $(rig_lb_fds lb1)"
	rig_assert "fd count (pipes aside) back to $before (got $after)" [ "$after" -le "$before" ] || return 1
	rig_assert "no active connections left" _active_zero || return 1
	return 0
}
