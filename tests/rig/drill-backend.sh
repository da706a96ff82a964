# drill-backend.sh - a real server dies and comes back (health check
# fall/rise timing, sticky clients re-pick), then drain and disable.

_other_server() { [ "$1" = FTP_SVR1 ] && echo FTP_SVR2 || echo FTP_SVR1; }

# True when backend NAME on lb1 is down and its last check is not ok.
_backend_down() {
	[ "$(rig_backend_state lb1 "$1")" = down ] &&
		[ "$(rig_backend_field lb1 "$1" last_check)" != ok ]
}

drill_backend() {
	local c1ip newip s o node t0 down_ms up_ms got
	local iv=$RIG_CHECK_INTERVAL_MS
	c1ip=$(rig_client_ip 1)
	newip=$(rig_client_ip $((RIG_NCLIENTS + 1)))	# an alias on the last client
	rig_lbctl lb1 sticky flush >/dev/null
	s=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "c1 session before the failure -> $s" rig_is_server "$s" || return 1
	o=$(_other_server "$s")
	node=${RIG_FTP_NODE[$s]}

	# --- failure: both vsftpd listeners of c1's server are killed.
	t0=$(rig_ms)
	rig_ftp_stop "$node" KILL
	rig_wait $(((RIG_CHECK_FALL + 2) * iv + 1000)) _backend_down "$s"
	down_ms=$(( $(rig_ms) - t0 ))
	echo "  figure: backend down detected after $down_ms ms (fall $RIG_CHECK_FALL x $iv ms)"
	rig_assert "$s down within fall x interval + one interval ($down_ms <= $(((RIG_CHECK_FALL + 1) * iv)) ms), last_check '$(rig_backend_field lb1 "$s" last_check)'" \
		[ "$down_ms" -le $(((RIG_CHECK_FALL + 1) * iv)) ] || return 1
	got=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "c1's next session succeeds on the other server ($got)" [ "$got" = "$o" ] || return 1
	got=$(rig_curl c1 implicit "$RIG_VIP" server.txt)
	rig_assert "c1 implicit session also on $o ($got)" [ "$got" = "$o" ] || return 1
	rig_assert "sticky get $c1ip now says $o" [ "$(rig_sticky_of lb1 "$c1ip")" = "$o" ] || return 1

	# --- recovery.
	# Timed from the moment both vsftpd listen again.
	rig_ftp_start "$node"
	t0=$(rig_ms)
	rig_wait $(((RIG_CHECK_RISE + 2) * iv + 1000)) rig_backend_is lb1 "$s" up
	up_ms=$(( $(rig_ms) - t0 ))
	echo "  figure: backend up again after $up_ms ms (rise $RIG_CHECK_RISE x $iv ms)"
	rig_assert "$s up within rise x interval + one interval ($up_ms <= $(((RIG_CHECK_RISE + 1) * iv)) ms)" \
		[ "$up_ms" -le $(((RIG_CHECK_RISE + 1) * iv)) ] || return 1
	got=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "c1 stays on $o after $s is back ($got)" [ "$got" = "$o" ] || return 1

	# --- drain: c1's server (now $o) keeps c1, gets no new client.
	local d=$o n=$s
	rig_lbctl lb1 backend "$d" drain >/dev/null
	rig_assert "lbctl backend $d drain -> state drain" rig_backend_is lb1 "$d" drain || return 1
	got=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "draining: sticky c1 still goes to $d ($got)" [ "$got" = "$d" ] || return 1
	rig_lbctl lb1 sticky clear "$newip" >/dev/null 2>&1
	local cn=c$RIG_NCLIENTS
	got=$(rig_curl "$cn" explicit "$RIG_VIP" server.txt --interface "$newip")
	rig_assert "draining: a new client $newip goes to $n ($got)" [ "$got" = "$n" ] || return 1

	# --- disable: c1 re-picks the other server.
	rig_lbctl lb1 backend "$d" disable >/dev/null
	rig_assert "lbctl backend $d disable -> state disabled" rig_backend_is lb1 "$d" disabled || return 1
	got=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "disabled: c1 re-picks $n ($got)" [ "$got" = "$n" ] || return 1
	rig_assert "sticky get $c1ip now says $n" [ "$(rig_sticky_of lb1 "$c1ip")" = "$n" ] || return 1

	rig_lbctl lb1 backend "$d" enable >/dev/null
	rig_assert "lbctl backend $d enable -> state up" rig_wait 2000 rig_backend_is lb1 "$d" up || return 1
	local rc
	rig_lbctl lb1 backend NO_SUCH_SERVER drain >/dev/null 2>&1
	rc=$?
	rig_assert "lbctl backend NO_SUCH_SERVER drain fails with exit 1 (got $rc)" [ "$rc" = 1 ] || return 1
	return 0
}
