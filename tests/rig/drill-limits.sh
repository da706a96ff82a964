# drill-limits.sh - greedy clients and a short descriptor limit (issue 13,
# points 4 and 5): one client cannot take every slot
# (max_connections_per_client), and lbd running out of descriptors marks
# no backend down, keeps lbctl working, and serves again afterwards.

# A status field of lb1's only service (or of lb1 itself).
_lim_status() { rig_lbctl lb1 --json status 2>/dev/null | rig_jval "$1" | head -1; }

_lim_active() { [ "$(rig_active_sum lb1)" = "$1" ]; }

# services[0].clients by path: status also has control.clients (lbctl itself).
_lim_no_clients() {
	local -A st
	rig_status_into lb1 st && [ "${st[services.0.clients]}" = 0 ]
}

# Puts lb1's config back (no per-client cap line) and reloads it.
_lim_conf_restore() {
	sed -i '/max_connections_per_client/d' "$RIG_DIR/lb1.conf"
	rig_lbctl lb1 reload >/dev/null 2>&1
}

# One client opens cap+1 connections: the last is closed at once, counted
# and logged; another client is served meanwhile; once the greedy client's
# connections end it is served again.
drill_client_cap() {
	local cap=4 r out pid
	sed -i "s/^\([[:space:]]*\)idle_timeout_s = \(.*\)$/&\n\1max_connections_per_client = $cap;/" \
		"$RIG_DIR/lb1.conf"
	if ! rig_lbctl lb1 reload >/dev/null; then
		rig_assert "reload with max_connections_per_client = $cap" false
		_lim_conf_restore
		return 1
	fi
	_drill_client_cap "$cap"
	r=$?
	_lim_conf_restore
	return $r
}

_drill_client_cap() {
	local cap=$1 out r before
	before=$(_lim_status refused_per_client)
	rig_assert "status shows max_connections_per_client $cap" \
		[ "$(_lim_status max_connections_per_client)" = "$cap" ] || return 1
	# c1 (RIG_ADDR c1) holds cap+1 connections to VIP:21 for 4 s.
	rm -f "$RIG_DIR/greet.out"
	rig_py c1 greet "$RIG_VIP" 21 --count $((cap + 1)) --hold 4 >"$RIG_DIR/greet.out" &
	local gpid=$!
	rig_wait 5000 _lim_active "$cap"
	rig_assert "$cap connections of c1 proxied" _lim_active "$cap" || { wait $gpid; return 1; }
	# Meanwhile: another client is served, c1 is not (on another port too).
	r=$(rig_curl c2 explicit "$RIG_VIP" server.txt)
	rig_assert "c2 served while c1 holds $cap connections ($r)" rig_is_server "$r" ||
		{ wait $gpid; return 1; }
	r=$(rig_curl c1 implicit "$RIG_VIP" server.txt 2>&1)
	rig_assert "c1's implicit FTPS session on 990 refused (${r:0:60})" \
		eval '! rig_is_server "$r"' || { wait $gpid; return 1; }
	wait $gpid
	out=$(cat "$RIG_DIR/greet.out")
	rig_assert "c1: $cap greeted, the one over the cap closed at once: $out" \
		eval '[ "$(rig_jval greeted <<<"$out")" = "$cap" ] && [ "$(rig_jval closed <<<"$out")" = 1 ]' ||
		return 1
	r=$(_lim_status refused_per_client)
	echo "  figure: refused_per_client $before -> $r"
	rig_assert "refused_per_client counts both refusals ($before -> $r)" \
		[ "$r" -ge $((before + 2)) ] || return 1
	rig_assert "the refusal is logged with the client address" \
		grep -q "client $(rig_client_ip 1) already has $cap connections open" "$RIG_DIR/lb1.log" || return 1
	rig_assert "lbctl status prints the refusals" \
		eval 'rig_lbctl lb1 status | grep -q "refused over max_connections_per_client"' || return 1
	# The count is exact: with c1's connections gone it is served again.
	rig_wait 10000 _lim_active 0
	r=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "c1 served again once its connections closed ($r)" rig_is_server "$r" || return 1
	rig_wait 5000 _lim_no_clients
	rig_assert "no client counted once all closed" _lim_no_clients || return 1
	return 0
}

# True while both backends are up on lb1; records a sample otherwise.
_lim_both_up() {
	rig_backend_is lb1 FTP_SVR1 up && rig_backend_is lb1 FTP_SVR2 up
}

# lbd under a tight open-files limit: room for about 10 clients beyond its
# own descriptors and the reserve. 30 clients connect and hold; the rest
# wait in the backlog; health checks keep both backends up; lbctl answers.
drill_fd_reserve() {
	local base limit r
	rig_wait 10000 _lim_active 0
	base=$(_fds_min lb1)
	# Reserve: one check socket per backend (2) + 32; 10 clients x 2 sockets.
	limit=$((base + 34 + 20))
	printf '#!/bin/sh\nexec prlimit --nofile=%s:%s "%s" "$@"\n' "$limit" "$limit" \
		"$RIG_LBD" >"$RIG_DIR/lbd-nofile"
	chmod +x "$RIG_DIR/lbd-nofile"
	echo "  lbd has $base descriptors open when idle; restarting it with nofile $limit"
	rig_lb_stop lb1
	RIG_LBD=$RIG_DIR/lbd-nofile rig_lb_start lb1
	rig_lb_wait_ready lb1
	_drill_fd_reserve "$limit"
	r=$?
	# Back to the rig's normal limit for the drills that follow.
	rig_lb_stop lb1
	rig_lb_start lb1
	rig_lb_wait_ready lb1
	return $r
}

_drill_fd_reserve() {
	local limit=$1 out i downs=0 ctl=0 n t0
	n=$(grep -c ' is down' "$RIG_DIR/lb1.log")
	rig_py c1 idle "$RIG_VIP" 21 --count 30 --hold 8 >"$RIG_DIR/idle30.out" &
	local ipid=$! held
	sleep 1
	held=$(rig_active_sum lb1)
	# While they hold: both backends stay up and lbctl answers every time.
	t0=$(rig_ms)
	for ((i = 0; i < 15; i++)); do
		_lim_both_up || downs=$((downs + 1))
		rig_lbctl lb1 status >/dev/null 2>&1 || ctl=$((ctl + 1))
		sleep 0.2
	done
	wait $ipid
	out=$(cat "$RIG_DIR/idle30.out")
	echo "  figure: $held clients proxied at once under nofile $limit, 15 samples over $(( $(rig_ms) - t0 )) ms: $downs with a backend not up, $ctl lbctl failures"
	rig_assert "30 clients connected ($out)" [ "$(rig_jval opened <<<"$out")" = 30 ] || return 1
	rig_assert "the others waited: about 10 proxied at once ($held)" \
		eval '[ "$held" -ge 5 ] && [ "$held" -le 14 ]' || return 1
	rig_assert "both backends stayed up" [ $downs = 0 ] || return 1
	rig_assert "no backend went down in the log" \
		[ "$(grep -c ' is down' "$RIG_DIR/lb1.log")" = "$n" ] || return 1
	rig_assert "lbctl answered every time" [ $ctl = 0 ] || return 1
	rig_assert "fd_reserve_pauses counted ($(_lim_status fd_reserve_pauses))" \
		[ "$(_lim_status fd_reserve_pauses)" -ge 1 ] || return 1
	rig_assert "the reserve pause is logged" \
		grep -q "descriptors kept for health checks, control and sync are left" "$RIG_DIR/lb1.log" ||
		return 1
	rig_assert "the start-up line says what to change" \
		grep -q "open files limit $limit is below .* set LimitNOFILE=" "$RIG_DIR/lb1.log" || return 1
	rig_wait 10000 _lim_active 0
	r=$(rig_curl c2 explicit "$RIG_VIP" server.txt)
	rig_assert "a session works afterwards ($r)" rig_is_server "$r" || return 1
	return 0
}
