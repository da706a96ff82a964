# drill-systemd.sh - lbd under a stand-in systemd (sdnotify.py on its
# NOTIFY_SOCKET): the notify protocol and the watchdog.  Sourced by run-drills.

# sd_notify lines (sdnotify.py's log: "MS PID MESSAGE") of MESSAGE's kind at or after SINCE_MS.
_sd_lines() {
	local log=$1 kind=$2 since=${3:-0}
	awk -v k="$kind" -v s="$since" '{ m = $0; sub(/^[^ ]+ [^ ]+ /, "", m) }
		$2 != "-" && $1 >= s && index(m, k) == 1 { print }' "$log" 2>/dev/null
}

# The watchdog: lb1, the MASTER, runs with WatchdogSec=1s from a stand-in
# systemd that does what systemd does when the pings stop (SIGABRT, then
# SIGKILL); its event loop is then wedged (LBD_TEST_HANG_FILE, test only).
# The pings must stop, the watchdog must end lb1, lb2 must take the VIP,
# and after the stop hook (ExecStopPost) the VIP is on lb2 alone.  Also
# shows READY=1, the STATUS= line and its update on a role change.
drill_watchdog() {
	local rc=0 sock=$RIG_DIR/lb1-notify.sock log=$RIG_DIR/lb1-notify.log
	local hang=$RIG_DIR/lb1-hang t0 tping tabort tm pid status last
	rm -f "$hang" "$log"
	rig_lb_stop lb1
	rig_wait 5000 rig_role_is lb2 MASTER || { rig_fail "lb2 did not take over from a stopped lb1"; return 1; }
	rig_bg lb1 lb1-sdnotify "$RIG_DIR/lb1-sdnotify.out" python3 "$RIG_HERE/sdnotify.py" \
		"$sock" "$log" --watchdog-ms 1000 --abort-ms 2000 --max-s 60
	rig_wait 3000 test -S "$sock" || { rig_fail "sdnotify.py did not bind $sock"; return 1; }
	# As systemd starts it: WATCHDOG_USEC from WatchdogSec=, no WATCHDOG_PID (unknown here).
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=1000000 LBD_TEST_HANG_FILE=$hang rig_lb_start lb1
	pid=$(rig_lb_pid lb1)
	rig_wait 15000 rig_ha_master_is lb1 || rc=1
	rig_assert "lb1 (watched) is MASTER again (preempt)" rig_ha_master_is lb1 || rc=1
	rig_wait 6000 eval '_sd_lines "$log" "STATUS=MASTER, VIP held, 2/2 backends up" | grep -q .'
	status=$(_sd_lines "$log" STATUS= | tail -1 | cut -d' ' -f3-)
	echo "  figure: STATUS line lbd sends as MASTER: \"${status#STATUS=}\""
	_sd_lines "$log" STATUS= | sed 's/^/  sd_notify: /' | tail -4
	rig_assert "READY=1 sent once serving" eval '_sd_lines "$log" READY=1 | grep -q .' || rc=1
	rig_assert "a STATUS= line with role, VIP, backends, connections and the peer: $status" \
		eval '[[ "$status" == "STATUS=MASTER, VIP held, 2/2 backends up, "*" active, peer lb2 alive (BACKUP)" ]]' || rc=1
	rig_wait 3000 eval '[ "$(_sd_lines "$log" WATCHDOG=1 | wc -l)" -ge 4 ]'
	local v
	v=$(rig_lbctl lb2 status | sed -n 's/^version: *//p')
	rig_assert "lbctl status on lb2 shows both nodes' versions: $v" \
		[ "$v" = "$(cd "$RIG_TOP" && "$RIG_LBD" --version | cut -d' ' -f2) here, $(cd "$RIG_TOP" && "$RIG_LBD" --version | cut -d' ' -f2) on lb1" ] || rc=1
	rig_assert "WATCHDOG=1 pings from the event loop (every 250 ms: $(_sd_lines "$log" WATCHDOG=1 | wc -l) so far)" \
		eval '[ "$(_sd_lines "$log" WATCHDOG=1 | wc -l)" -ge 4 ]' || rc=1

	t0=$(rig_ms)
	touch "$hang"
	rig_wait 10000 rig_role_is lb2 MASTER
	rig_wait 5000 eval '! rig_pid_running "$pid"'
	tm=$(rig_role_event_ms lb2 MASTER "$t0" 2>/dev/null)
	last=$(_sd_lines "$log" WATCHDOG=1 | tail -1 | cut -d' ' -f1)
	tping=$((last - t0))
	tabort=$(awk -v s="$t0" '$2 == "-" && /SIGABRT/ { print $1 - s; exit }' "$log")
	echo "  figure: loop wedged at t0: last WATCHDOG=1 $tping ms from t0, SIGABRT at t0 + ${tabort:-none} ms, lb2 MASTER at t0 + $((${tm:-t0} - t0)) ms"
	sed -n 's/^[0-9]* - /  sdnotify: /p' "$log"
	rig_assert "the pings stopped when the loop hung (last one $tping ms from t0, the hang check follows each ping)" \
		[ "$tping" -le 300 ] || rc=1
	rig_assert "the stand-in systemd's watchdog fired (SIGABRT at t0 + ${tabort:-none} ms)" \
		[ -n "$tabort" ] || rc=1
	rig_assert "the wedged lbd ended" eval '! rig_pid_running "$pid"' || rc=1
	rig_assert "lb2 took over (role $(rig_role lb2))" rig_role_is lb2 MASTER || rc=1
	# systemd's ExecStopPost= after the kill: the VIP leaves the dead node.
	rig_exec lb1 "$RIG_TOP/deploy/lbd-release-vip" -c "$RIG_DIR/lb1.conf" >/dev/null 2>&1
	rig_assert "after the stop hook the VIP is on lb2 only (holders: $(rig_vip_holders))" \
		eval '[ "$(rig_vip_holders)" = lb2 ]' || rc=1
	rm -f "$hang"
	rig_kill lb1-sdnotify
	rig_kill lb1-lbd KILL
	# Restart= as systemd would, without the stand-in this time.
	rig_lb_start lb1
	return $rc
}
