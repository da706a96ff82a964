# drill-ha.sh - the HA pair's drills: steady state, a
# MASTER process crash and its systemd-style restart, node power-off,
# `lbctl failover`, partition and heal, the MASTER's link down, forged and
# replayed heartbeats, and no false failover under full load at 20 ms
# adverts.  They run in a rig with RIG_LB_NODES="lb1 lb2" (lb1 priority
# 150, lb2 100); ha_reset puts the pair back between drills.  Client-visible
# outages are measured by the probe (probe.c) from c1: a connect to VIP:21
# and its 220 greeting every RIG_PROBE_INTERVAL_MS (lib.sh), each within
# RIG_PROBE_TIMEOUT_MS; role change times come from the nodes' logs.

_ha_iv() { echo "${RIG_ADVERT_MS:-100}"; }

# Interval the node configs were written with.
_ha_conf_iv() { sed -n 's/.*advert_interval_ms = \([0-9]*\);.*/\1/p' "$RIG_DIR/lb1.conf"; }



# True when exactly one of the two nodes reports MASTER.
_ha_one_master() {
	local r1 r2
	r1=$(rig_role lb1)
	r2=$(rig_role lb2)
	[ "$r1" = MASTER ] && [ "$r2" != MASTER ] && return 0
	[ "$r2" = MASTER ] && [ "$r1" != MASTER ]
}

# Prints "role role_changes adverts_received auth_failures replays
# malformed unknown_sender" of NODE ("-" for a missing key).
_ha_snap() {
	local -A st
	local k out
	rig_status_into "$1" st || { echo down; return 1; }
	out=${st[role]:--}
	for k in role_changes adverts_received auth_failures replays malformed unknown_sender; do
		out="$out ${st[ha.$k]:--}"
	done
	echo "$out"
}

# Milliseconds from T0 to NODE's first role event into ROLE since T0, or
# "none".
_ha_ev() {
	local t
	t=$(rig_role_event_ms "$1" "$2" "$3") || { echo none; return 0; }
	echo $((t - $3))
}

# Field N (1 = role, 2 = role_changes, ...) of a _ha_snap line.
_ha_f() { awk -v n="$2" '{ print $n }' <<<"$1"; }

# True when $1 is a number (a status counter that exists).
_ha_num() { [[ $1 =~ ^[0-9]+$ ]]; }

# True when the pair is settled and has stayed so, same MASTER and same
# role_changes on both, for MS ms (sampled every 100 ms or slower).
_ha_stable() {
	local ms=$1 m c1 c2 start
	m=$(rig_ha_master) || return 1
	c1=$(_ha_f "$(_ha_snap lb1)" 2)
	c2=$(_ha_f "$(_ha_snap lb2)" 2)
	start=$(rig_ms)
	while (( $(rig_ms) - start < ms )); do
		sleep 0.1
		[ "$(rig_ha_master)" = "$m" ] || return 1
	done
	[ "$(_ha_f "$(_ha_snap lb1)" 2)" = "$c1" ] && [ "$(_ha_f "$(_ha_snap lb2)" 2)" = "$c2" ]
}

# Waits (bounded by TIMEOUT_MS) until the pair is settled and stable for
# 1.5 s; prints the MASTER.
_ha_settle() {
	local timeout_ms=$1 start
	start=$(rig_ms)
	while (( $(rig_ms) - start < timeout_ms )); do
		if _ha_stable 1500; then
			rig_ha_master
			return 0
		fi
		sleep 0.1
	done
	RIG_WHY=1 rig_ha_master >/dev/null
	return 1
}

# Prints "VALUE" of KEY in a probe summary, for figures.
_ha_p() { rig_pval "$1" "$2"; }

# One figure line for a probe summary; with T0_MS (the event's wall-clock
# time) the failures are listed in ms since it.
# Usage: _ha_probe_figure WHAT "$line" NAME [T0_MS]
_ha_probe_figure() {
	local what=$1 line=$2 name=$3 t0=${4:-} at=
	[ -n "$t0" ] && _ha_num "$(_ha_p "$line" outage_max_wall_ms)" &&
		at=", began at event+$(( $(_ha_p "$line" outage_max_wall_ms) - t0 )) ms"
	echo "  figure: $what: longest outage $(_ha_p "$line" outage_max_ms) ms$at" \
		"(probe: $(_ha_p "$line" attempts) attempts, $(_ha_p "$line" failures) failed:" \
		"refused $(_ha_p "$line" refused), timeout $(_ha_p "$line" timeout)," \
		"reset $(_ha_p "$line" reset), unreachable $(_ha_p "$line" unreachable);" \
		"open $(_ha_p "$line" open))"
	local since="the probe start"
	[ -n "$t0" ] && since="the event"
	[ "$(_ha_p "$line" failures)" = 0 ] ||
		echo "    probe failures (kind@ms since $since): $(rig_probe_fails "$name" "$t0")"
}

# Writes both configs with the current RIG_ADVERT_MS and restarts the pair:
# lb2 stopped, lb1 stopped (graceful), lb1 started (MASTER), lb2 started.
_ha_restart_pair() {
	rig_lb_conf lb1 lb2
	rig_lb_conf lb2 lb1
	rig_lb_stop lb2
	rig_lb_stop lb1
	rig_lb_start lb1
	rig_lb_wait_ready lb1
	rig_lb_start lb2
	rig_lb_wait_ready lb2 novip
}

# Puts the pair back to its start state: links up, no blackhole routes,
# 100 ms adverts, both lbd running, lb1 MASTER and lb2 BACKUP settled,
# both real servers running and up on both nodes, an empty sticky table.
# Returns 1 (with why) when it cannot.
ha_reset() {
	local n b m
	for n in lb1 lb2; do
		rig_exec "$n" ip link set eth0 up 2>/dev/null
		rig_link "$n" up 2>/dev/null
		rig_exec "$n" ip route del blackhole "${RIG_ADDR[$(rig_lb_other "$n")]}/$(rig_host_plen)" 2>/dev/null
	done
	for n in ftp1 ftp2; do
		rig_alive "$n-vsftpd-21" && rig_alive "$n-vsftpd-990" && continue
		rig_ftp_stop "$n"
		rig_ftp_start "$n"
	done
	# A failed drill may leave clients and servers resolving the VIP to a
	# node that no longer holds it: each drill starts with fresh ARP.
	for n in c1 c2 ftp1 ftp2; do
		ip -n "$(rig_ns "$n")" neigh flush to "$RIG_VIP" 2>/dev/null
	done
	if [ "$(_ha_conf_iv)" != "${RIG_ADVERT_MS:-100}" ]; then
		( _ha_restart_pair ) || return 1
	fi
	for n in lb1 lb2; do
		rig_alive "$n-lbd" || ( rig_lb_start "$n" ) || return 1
	done
	if ! rig_wait 5000 rig_ha_master_is lb1; then
		# lb1 handed over earlier (`lbctl failover`) and does not preempt: hand back.
		m=$(rig_ha_master 2>/dev/null)
		[ "$m" = lb2 ] && rig_lbctl lb2 failover >/dev/null 2>&1
		rig_wait 15000 rig_ha_master_is lb1 || {
			RIG_WHY=1 rig_ha_master >/dev/null
			return 1
		}
	fi
	for n in lb1 lb2; do
		for b in FTP_SVR1 FTP_SVR2; do
			rig_lbctl "$n" backend "$b" enable >/dev/null 2>&1
			rig_wait 10000 rig_backend_is "$n" "$b" up || {
				echo "  reset: $b not up on $n" >&2
				return 1
			}
		done
	done
	rig_lbctl lb1 sticky flush >/dev/null 2>&1
	echo "  figure: load average $(rig_load) (2 CPUs here: HA timings stretch on a busy machine)"
	return 0
}

# ---------------------------------------------------------------- drills

# Steady state: exactly one node has the VIP, both lbctl status agree.
drill_ha_steady() {
	local m s1 s2 a1 a2 b1 b2 iv=$(_ha_iv) age1 age2 c1 c2 s p1 p2
	m=$(RIG_WHY=1 rig_ha_master)
	rig_assert "settled: VIP on [$(rig_vip_holders)] only, lbctl status of both agree (MASTER: ${m:-none})" \
		[ -n "$m" ] || return 1
	rig_assert "lb1 (priority 150) is the MASTER" [ "$m" = lb1 ] || return 1
	s1=$(rig_status lb1)
	s2=$(rig_status lb2)
	rig_assert "lb1: peer lb2 alive (name '$(rig_sval "$s1" peer.name)', state '$(rig_sval "$s1" peer.state)', priority '$(rig_sval "$s1" peer.priority)')" \
		eval '[ "$(rig_sval "$s1" peer.name)" = lb2 ] && [ "$(rig_sval "$s1" peer.state)" = alive ] && [ "$(rig_sval "$s1" peer.priority)" = 100 ]' || return 1
	rig_assert "lb2: peer lb1 alive (name '$(rig_sval "$s2" peer.name)', state '$(rig_sval "$s2" peer.state)', priority '$(rig_sval "$s2" peer.priority)')" \
		eval '[ "$(rig_sval "$s2" peer.name)" = lb1 ] && [ "$(rig_sval "$s2" peer.state)" = alive ] && [ "$(rig_sval "$s2" peer.priority)" = 150 ]' || return 1
	age1=$(rig_sval "$s1" peer.last_advert_ms)
	age2=$(rig_sval "$s2" peer.last_advert_ms)
	rig_assert "last advert ages below 3 x $iv ms (lb1 '$age1', lb2 '$age2')" \
		eval '_ha_num "$age1" && _ha_num "$age2" && [ "$age1" -lt $((3 * iv)) ] && [ "$age2" -lt $((3 * iv)) ]' || return 1
	a1=$(_ha_snap lb1)
	a2=$(_ha_snap lb2)
	sleep 2
	b1=$(_ha_snap lb1)
	b2=$(_ha_snap lb2)
	rig_assert "no role change over 2 s (role_changes lb1 $(_ha_f "$a1" 2)->$(_ha_f "$b1" 2), lb2 $(_ha_f "$a2" 2)->$(_ha_f "$b2" 2))" \
		eval '_ha_num "$(_ha_f "$b1" 2)" && [ "$(_ha_f "$a1" 2)" = "$(_ha_f "$b1" 2)" ] && [ "$(_ha_f "$a2" 2)" = "$(_ha_f "$b2" 2)" ]' || return 1
	c1=$(( $(_ha_f "$b1" 3) - $(_ha_f "$a1" 3) ))
	c2=$(( $(_ha_f "$b2" 3) - $(_ha_f "$a2" 3) ))
	rig_assert "adverts flow both ways: lb1 received $c1, lb2 received $c2 in 2 s (expect ~$((2000 / iv)) each)" \
		eval '[ "$c1" -ge $((2000 / iv / 2)) ] && [ "$c2" -ge $((2000 / iv / 2)) ]' || return 1
	s=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "explicit FTPS via the VIP -> '$s'" rig_is_server "$s" || return 1
	rig_assert "lbctl status (tables) works on lb1 and lb2" \
		eval 'rig_lbctl lb1 status >/dev/null && rig_lbctl lb2 status >/dev/null' || return 1
	p1=$(grep -o 'use local ports [0-9]*-[0-9]*' "$RIG_DIR/lb1.log" | tail -1 | awk '{ print $4 }')
	p2=$(grep -o 'use local ports [0-9]*-[0-9]*' "$RIG_DIR/lb2.log" | tail -1 | awk '{ print $4 }')
	rig_assert "backend ports from the VIP: lb1 (lower address) '$p1' below lb2 '$p2', disjoint" \
		eval '[ -n "$p1" ] && [ -n "$p2" ] && [ "${p1#*-}" -lt "${p2%-*}" ]' || return 1
	echo "  figure: MASTER lb1, BACKUP lb2; adverts/s received lb1 $((c1 / 2)) lb2 $((c2 / 2));" \
		"peer advert age lb1 ${age1} ms lb2 ${age2} ms; sync lb1 '$(rig_sval "$s1" sync.state)' lb2 '$(rig_sval "$s2" sync.state)'"
	return 0
}

# kill -9 of the MASTER's lbd: outage < 50 ms; restarted as systemd would.
drill_ha_crash() {
	local t0 line outage m rc=0
	rig_probe_start c1 probe-crash 20 || return 1
	sleep 0.5
	t0=$(rig_ms)
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	# The probe covers the crash only: stopped before the restart at t0 + 1 s.
	sleep 0.5
	line=$(rig_probe_stop probe-crash)
	outage=$(_ha_p "$line" outage_max_ms)
	echo "  figure: kill -9 of lb1's lbd: lb2 MASTER $(_ha_ev lb2 MASTER "$t0") ms after the kill (its log)"
	_ha_probe_figure "kill -9 of the MASTER's lbd" "$line" probe-crash "$t0"
	rig_assert "lb2 took over (role $(rig_role lb2), VIP on lb2: $(_rig_vip_on lb2 && echo yes || echo no))" \
		eval 'rig_role_is lb2 MASTER && _rig_vip_on lb2' || rc=1
	# The probe's figure runs from the last success before the failures to
	# the first one after: with attempts every I ms, k failed attempts read
	# (k+1) x I, an upper bound. At a 10 ms probe that bound fits in
	# 50 ms; the rig probes at 20 ms (vsftpd forks, lib.sh), so the check
	# takes the span from the first failed attempt to the first success,
	# k x I: the killed process's own connections in flight, plus the ~5 ms
	# (up to ~25 ms on a busy machine) its kernel takes to close its sockets.
	local est=0
	_ha_num "$outage" && [ "$outage" -gt 0 ] && est=$((outage - RIG_PROBE_INTERVAL_MS))
	rig_assert "client-visible outage < 50 ms: ${est} ms from the first failed attempt to the next success (probe every $RIG_PROBE_INTERVAL_MS ms; ${outage:-none} ms counted from the last success before)" \
		eval '_ha_num "$outage" && [ "$est" -lt 50 ]' || rc=1

	# systemd: Restart=always, RestartSec=1 -> the same command 1 s later.
	rig_probe_start c1 probe-rejoin 30 || rc=1
	rig_lb_restart_systemd lb1 "$t0"
	local tr=$RIG_LB_STARTED_MS
	echo "  lb1 restarted $((tr - t0)) ms after the kill (RestartSec=$RIG_RESTART_SEC)"
	m=$(_ha_settle 15000)
	rig_assert "the pair settled: VIP on exactly one node, both lbctl status agree (MASTER ${m:-none})" \
		[ -n "$m" ] || rc=1
	if [ "$m" != lb1 ] && rig_wait 10000 rig_ha_master_is lb1; then
		m=lb1
	fi
	line=$(rig_probe_stop probe-rejoin)
	echo "  figure: restart: settled $(( $(rig_ms) - tr )) ms after the restart with MASTER ${m:-none};" \
		"lb1 MASTER again $(_ha_ev lb1 MASTER "$tr") ms after it (preempt, priority 150)"
	_ha_probe_figure "restart and rejoin, preemption included" "$line" probe-rejoin "$tr"
	return $rc
}

# Node power-off: lb1's link goes down and its lbd dies at the same
# instant (link first, so no FIN/RST of the dying process escapes).
drill_ha_poweroff() {
	local t0 line outage rc=0 iv=$(_ha_iv) bound m
	bound=$((iv * 7 / 2))
	rig_probe_start c1 probe-poweroff 20 || return 1
	sleep 0.5
	t0=$(rig_ms)
	rig_exec lb1 ip link set eth0 down
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	sleep "$(awk -v b="$bound" 'BEGIN { printf "%.3f", (b + 300) / 1000 }')"
	line=$(rig_probe_stop probe-poweroff)
	outage=$(_ha_p "$line" outage_max_ms)
	echo "  figure: power-off of lb1: lb2 MASTER $(_ha_ev lb2 MASTER "$t0") ms after it (Master_Down: 3 x $iv ms + skew)"
	_ha_probe_figure "power-off of the MASTER" "$line" probe-poweroff "$t0"
	rig_assert "lb2 took over (role $(rig_role lb2), VIP on lb2: $(_rig_vip_on lb2 && echo yes || echo no))" \
		eval 'rig_role_is lb2 MASTER && _rig_vip_on lb2' || rc=1
	rig_assert "client-visible outage <= 3.5 x advert interval = $bound ms (got ${outage:-none} ms)" \
		eval '_ha_num "$outage" && [ "$outage" -le "$bound" ]' || rc=1

	# Power on: link up, lbd started by systemd.
	rig_exec lb1 ip link set eth0 up
	rig_lb_restart_systemd lb1 "$t0"
	m=$(_ha_settle 15000)
	rig_assert "powered on again: the pair settled with the VIP on one node (MASTER ${m:-none})" \
		[ -n "$m" ] || rc=1
	return $rc
}

# `lbctl failover` on the MASTER: no probe fails; the handover sticks;
# failover on a BACKUP is refused; handing back fails no probe either.
# Connections that began on the old MASTER live on (steer.c): a 64 MiB
# download in flight completes with the right sha256, and an FTPS session
# opened before the handover lists and retrieves again after it, on the
# same real server; the old MASTER reports draining until they end, then
# both nodes stop steering.
_ha_assert_handover() { # line label
	local f o
	f=$(_ha_p "$1" failures)
	o=$(_ha_p "$1" outage_max_ms)
	rig_assert "$2: no probe failed ($f of $(_ha_p "$1" attempts) failed, longest gap ${o} ms)" \
		eval '[ "$f" = 0 ]'
}

# NODE's lbd main thread's scheduling policy: OTHER, RR (or the number).
_ha_policy() {
	local p
	p=$(awk '{ print $41 }' "/proc/$(rig_lb_pid "$1")/stat" 2>/dev/null)
	case $p in 0) echo OTHER ;; 2) echo RR ;; *) echo "${p:-none}" ;; esac
}

# Prints "draining forwarding" as NODE's status says (false false when absent).
_ha_steer_state() {
	local -A st
	rig_status_into "$1" st
	echo "${st[vip.draining]:-false} ${st[vip.forwarding]:-false}"
}

# A handover FROM -> TO under the probe, with a download and a held FTPS
# session that began on FROM.  Usage: _ha_handover FROM TO PROBENAME
_ha_handover() {
	local from=$1 to=$2 pn=$3 line out rc t0 r=0 big="$RIG_DIR/ho-big.bin"
	local ready="$RIG_DIR/ho-ready" go="$RIG_DIR/ho-go" held="$RIG_DIR/ho-held.out"
	local cpid hpid sha w st ms

	rm -f "$big" "$ready" "$go" "$held"
	rig_curl c1 explicit "$RIG_VIP" big.bin -o "$big" --max-time 60 --limit-rate 16M \
		-w '%{http_code} %{size_download} %{time_total}' >"$RIG_DIR/ho.curl" 2>&1 &
	cpid=$!
	rig_py c2 hold "$RIG_VIP" "$ready" "$go" --max-wait 30 >"$held" 2>&1 &
	hpid=$!
	rig_wait 5000 test -e "$ready" && rig_wait 5000 test -s "$big" ||
		{ rig_fail "session and download started before the handover"; kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	rig_probe_start c1 "$pn" 20 || { kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	# `lbctl monitor` on both: the steering shows up as handover events.
	local mf mt
	timeout 30 "$RIG_LBCTL" -s "$(rig_sock "$from")" monitor >"$RIG_DIR/ho-mon-from.out" 2>&1 &
	mf=$!
	timeout 30 "$RIG_LBCTL" -s "$(rig_sock "$to")" monitor >"$RIG_DIR/ho-mon-to.out" 2>&1 &
	mt=$!
	sleep 0.5
	t0=$(rig_ms)
	out=$(rig_lbctl "$from" failover 2>&1)
	rc=$?
	rig_wait_fast 3000 rig_ha_master_is "$to"
	sleep 0.5
	line=$(rig_probe_stop "$pn")
	echo "  figure: lbctl failover $from -> $to: $to MASTER after $(_ha_ev "$to" MASTER "$t0") ms"
	_ha_probe_figure "lbctl failover ($from -> $to)" "$line" "$pn" "$t0"
	rig_assert "lbctl failover on $from exits 0 ($(head -1 <<<"$out"))" [ "$rc" = 0 ] || r=1
	rig_assert "$to is MASTER, $from BACKUP, VIP on [$(rig_vip_holders)]" rig_ha_master_is "$to" ||
		{ kill "$cpid" "$hpid" 2>/dev/null; return 1; }
	_ha_assert_handover "$line" "$from -> $to" || r=1
	st="$(_ha_steer_state "$from") $(_ha_steer_state "$to")"
	echo "  figure: while the download runs: $from draining/forwarding ${st% * *}, $to ${st#* * }"
	rig_assert "$from drains (VIP hidden on lo) and $to forwards its connections to it" \
		[ "$st" = "true false false true" ] || r=1
	# A draining node relays: ordinary scheduling, like a MASTER's main thread.
	rig_assert "$from's main thread is SCHED_OTHER while it drains ($(_ha_policy "$from")), $to's too ($(_ha_policy "$to"))" \
		eval '[ "$(_ha_policy "$from") $(_ha_policy "$to")" = "OTHER OTHER" ]' || r=1
	out=$(rig_lbctl "$to" failover 2>&1)
	rc=$?
	rig_assert "handing back while $from drains is refused, exit 1 ($(head -1 <<<"$out"))" \
		eval '[ "$rc" = 1 ] && [[ $out == *draining* ]] && rig_ha_master_is "$to"' || r=1

	touch "$go"
	wait "$hpid"
	echo "  figure: FTPS session across the handover: $(cat "$held")"
	rig_assert "the FTPS session opened on $from lists and retrieves again after the handover, same server" \
		grep -q '"ok": true' "$held" || r=1
	wait "$cpid"
	rc=$?
	w=$(cat "$RIG_DIR/ho.curl")
	sha=$(sha256sum "$big" 2>/dev/null | cut -d' ' -f1)
	echo "  figure: ${RIG_BIG_MIB} MiB download across the handover: curl exit $rc, code/bytes/s: $w"
	rig_assert "the download begun on $from completes after the handover, sha256 matches" \
		eval '[ "$rc" = 0 ] && [ "$sha" = "$RIG_BIG_SHA" ]' || r=1
	rm -f "$big" "$ready" "$go"
	t0=$(rig_ms)
	rig_wait 5000 eval '[ "$(_ha_steer_state "$from") $(_ha_steer_state "$to")" = "false false false false" ]'
	ms=$(( $(rig_ms) - t0 ))
	rig_assert "steering ends once the old connections are gone (${ms} ms after the download; now $(_ha_steer_state "$from") / $(_ha_steer_state "$to"))" \
		eval '[ "$(_ha_steer_state "$from") $(_ha_steer_state "$to")" = "false false false false" ]' || r=1
	rig_assert "no VIP left on $from's lo" \
		eval '! ip -n "$(rig_ns "$from")" -o addr show dev lo | grep -qF " $RIG_VIP/"' || r=1
	rig_assert "drained, $from (BACKUP) is SCHED_RR again ($(_ha_policy "$from"))" \
		[ "$(_ha_policy "$from")" = RR ] || r=1
	kill "$mf" "$mt" 2>/dev/null
	wait "$mf" "$mt" 2>/dev/null
	echo "  figure: lbctl monitor on $from: $(grep -h ' handover ' "$RIG_DIR/ho-mon-from.out" | cut -c1-90 | paste -sd '|')"
	echo "  figure: lbctl monitor on $to: $(grep -h ' handover ' "$RIG_DIR/ho-mon-to.out" | cut -c1-90 | paste -sd '|')"
	rig_assert "lbctl monitor on $from shows handover draining then drained" \
		eval 'grep -q " handover draining" "$RIG_DIR/ho-mon-from.out" && grep -q " handover drained" "$RIG_DIR/ho-mon-from.out"' || r=1
	rig_assert "lbctl monitor on $to shows handover forwarding then forwarding stopped" \
		eval 'grep -q " handover forwarding (" "$RIG_DIR/ho-mon-to.out" && grep -q " handover forwarding stopped" "$RIG_DIR/ho-mon-to.out"' || r=1
	return $r
}

drill_ha_failover() {
	local out rc r=0
	out=$(rig_lbctl lb2 failover 2>&1)
	rc=$?
	rig_assert "lbctl failover on the BACKUP lb2 is refused with exit 1 ($(head -1 <<<"$out"))" [ "$rc" = 1 ] || r=1
	rig_assert "... and changes nothing (MASTER $(rig_ha_master))" rig_ha_master_is lb1 || return 1

	_ha_handover lb1 lb2 probe-failover || r=1
	rig_assert "the handover sticks: lb1 does not preempt back (MASTER $(rig_ha_master))" \
		rig_ha_master_is lb2 || return 1
	_ha_handover lb2 lb1 probe-failback || r=1
	return $r
}

# Graceful stop (SIGTERM, what `systemctl stop lbd` sends) of the MASTER
# while a download runs through it: lb1 hands over first (no probe fails),
# serves the download to its end, then exits by itself; restarted, it
# takes the VIP back by preemption, again with no failed probe.
drill_ha_stop() {
	local pid t0 t1 line big="$RIG_DIR/stop-big.bin" rc sha cpid r=0 i ev fails late early

	rig_ha_master_is lb1 || { rig_fail "lb1 is not MASTER before the drill"; return 1; }
	rm -f "$big"
	rig_curl c1 explicit "$RIG_VIP" big.bin -o "$big" --max-time 60 --limit-rate 16M \
		-w '%{http_code} %{size_download} %{time_total}' >"$RIG_DIR/stop.curl" 2>&1 &
	cpid=$!
	rig_wait 5000 test -s "$big" || { rig_fail "download started"; kill "$cpid" 2>/dev/null; return 1; }
	rig_probe_start c2 probe-stop 30 || { kill "$cpid" 2>/dev/null; return 1; }
	sleep 0.5
	pid=$(rig_lb_pid lb1)
	t0=$(rig_ms)
	kill -TERM "$pid"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	echo "  figure: SIGTERM to lb1 (MASTER): lb2 MASTER after $(_ha_ev lb2 MASTER "$t0") ms"
	rig_assert "lb1 still runs while its download goes on (pid $pid)" rig_pid_running "$pid" || r=1
	wait "$cpid"
	rc=$?
	sha=$(sha256sum "$big" 2>/dev/null | cut -d' ' -f1)
	echo "  figure: download across the stop: curl exit $rc, code/bytes/s: $(cat "$RIG_DIR/stop.curl")"
	rig_assert "the download begun on lb1 completes after its SIGTERM, sha256 matches" \
		eval '[ "$rc" = 0 ] && [ "$sha" = "$RIG_BIG_SHA" ]' || r=1
	rm -f "$big"
	t1=$(rig_ms)
	for ((i = 0; i < 200; i++)); do
		rig_pid_running "$pid" || break
		sleep 0.05
	done
	echo "  figure: lb1 exited $(( $(rig_ms) - t1 )) ms after the download ended ($(( $(rig_ms) - t0 )) ms after SIGTERM)"
	rig_assert "lb1 exits by itself once the download is over" eval '! rig_pid_running "$pid"' ||
		{ kill -KILL "$pid" 2>/dev/null; r=1; }
	rm -f "$RIG_DIR/pids/lb1-lbd"
	rig_assert "lb1 said why it waited" grep -q "handover done, stopping" "$RIG_DIR/lb1.log" || r=1
	line=$(rig_probe_stop probe-stop)
	_ha_probe_figure "graceful stop of the MASTER (SIGTERM)" "$line" probe-stop "$t0"
	_ha_assert_handover "$line" "SIGTERM lb1" || r=1
	rig_assert "no VIP left on lb1's lo, no lbd_steer table in lb1" \
		eval '! ip -n "$(rig_ns lb1)" -o addr show dev lo | grep -qF " $RIG_VIP/" &&
		! ip netns exec "$(rig_ns lb1)" nft list tables 2>/dev/null | grep -q lbd_steer' || r=1

	# An FTP control session held through lb2 keeps lb2 draining after
	# the preemption below, for the SIGTERM-while-the-peer-drains step.
	rig_bg c1 stop-hold "$RIG_DIR/stop-hold.log" timeout 30 bash -c \
		"exec 3<>/dev/tcp/$RIG_VIP/21 && head -c 3 <&3 && sleep 25"
	rig_wait 5000 grep -q 220 "$RIG_DIR/stop-hold.log" ||
		{ rig_fail "a session through lb2 (for the drain step) did not open"; r=1; }
	rig_probe_start c2 probe-stop-back 30 || return 1
	t0=$(rig_ms)
	rig_lb_start lb1
	rig_wait 15000 rig_ha_master_is lb1
	sleep 0.5
	line=$(rig_probe_stop probe-stop-back)
	echo "  figure: lb1 restarted: MASTER again after $(_ha_ev lb1 MASTER "$t0") ms (preemption after its bulk sync)"
	rig_assert "restarted lb1 is MASTER again (MASTER $(rig_ha_master))" rig_ha_master_is lb1 || r=1
	_ha_probe_figure "preemption back to lb1" "$line" probe-stop-back "$t0"
	_ha_assert_handover "$line" "preemption lb2 -> lb1" || r=1

	# SIGTERM while lb2 still serves the session of that preemption: lb2
	# cannot take lb1's connections, but lb1 still hands over and keeps
	# the VIP until lb2 says MASTER: no new connection is lost.
	rig_assert "lb2 drains the held session (draining forwarding: $(_ha_steer_state lb2))" \
		eval '[ "$(_ha_steer_state lb2)" = "true false" ]' || r=1
	rig_probe_start c2 probe-stop-drain 30 || return 1
	sleep 0.3
	pid=$(rig_lb_pid lb1)
	t0=$(rig_ms)
	kill -TERM "$pid"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	for ((i = 0; i < 100; i++)); do
		rig_pid_running "$pid" || break
		sleep 0.05
	done
	sleep 0.3
	line=$(rig_probe_stop probe-stop-drain)
	echo "  figure: SIGTERM to lb1 while lb2 drains: lb2 MASTER after $(_ha_ev lb2 MASTER "$t0") ms, lb1 exited after $(( $(rig_ms) - t0 - 300 )) ms at most"
	_ha_probe_figure "SIGTERM while the peer drains" "$line" probe-stop-drain "$t0"
	rig_assert "lb1 handed over although lb2 was draining (its log says so), and exited" \
		eval 'grep -q "which still serves the connections of the last handover" "$RIG_DIR/lb1.log" && ! rig_pid_running "$pid"' || r=1
	rm -f "$RIG_DIR/pids/lb1-lbd"
	# lb2 cannot take the connections begun on lb1 (it drains its own), so
	# an attempt begun on lb1 before lb2 is MASTER may be cut (README); no
	# attempt begun after that may fail, and at most the two in flight do.
	ev=$(_ha_ev lb2 MASTER "$t0")
	fails=$(rig_probe_fails probe-stop-drain "$t0")
	late=$(tr ',' '\n' <<<"$fails" | awk -F@ -v ev="$ev" 'NF == 2 && $2 + 0 >= ev + 0 { n++ } END { print n + 0 }')
	early=$(tr ',' '\n' <<<"$fails" | awk -F@ -v ev="$ev" 'NF == 2 && $2 + 0 < ev + 0 { n++ } END { print n + 0 }')
	echo "  figure: SIGTERM while the peer drains: $early failed attempt(s) begun on lb1 before lb2 was MASTER (+$ev ms), $late begun after"
	rig_assert "SIGTERM lb1 while lb2 drains: no attempt begun after lb2 took over failed ($late), at most 2 begun on lb1 cut ($early)" \
		eval '_ha_num "$ev" && [ "$late" = 0 ] && [ "$early" -le 2 ]' || r=1
	rig_kill stop-hold
	rig_lb_start lb1
	rig_wait 15000 rig_ha_master_is lb1
	rig_assert "lb1 MASTER again (MASTER $(rig_ha_master))" rig_ha_master_is lb1 || r=1
	return $r
}

# Drops heartbeat and sync traffic between lb1 and lb2 (blackhole routes
# inside their namespaces: clients and real servers are unaffected).
# Usage: _ha_partition add|del
_ha_partition() {
	ip -n "$(rig_ns lb1)" route "$1" blackhole "${RIG_ADDR[lb2]}/$(rig_host_plen)" &&
		ip -n "$(rig_ns lb2)" route "$1" blackhole "${RIG_ADDR[lb1]}/$(rig_host_plen)"
}

# Partition: both become MASTER (split brain); heal: one MASTER within two
# advert intervals, and clients reach the VIP.
drill_ha_partition() {
	local t0 th ev line s r=0 iv=$(_ha_iv) m
	rig_probe_start c1 probe-partition 30 || return 1
	sleep 0.3
	t0=$(rig_ms)
	_ha_partition add || { rig_fail "could not add the blackhole routes"; return 1; }
	rig_wait_fast 5000 rig_role_is lb2 MASTER
	echo "  figure: partition: lb2 MASTER after $(_ha_ev lb2 MASTER "$t0") ms; roles lb1 $(rig_role lb1) lb2 $(rig_role lb2), VIP on [$(rig_vip_holders)]"
	rig_assert "partition took effect: lb2 MASTER too (split brain)" \
		eval 'rig_role_is lb2 MASTER && rig_role_is lb1 MASTER' || r=1
	sleep 1
	# Heal: both routes removed at once; the heal is complete at th.
	t0=$(rig_ms)
	ip -n "$(rig_ns lb1)" route del blackhole "${RIG_ADDR[lb2]}/$(rig_host_plen)" &
	ip -n "$(rig_ns lb2)" route del blackhole "${RIG_ADDR[lb1]}/$(rig_host_plen)"
	wait $!
	th=$(rig_ms)
	rig_wait_fast 3000 _ha_one_master
	ev=$(_ha_ev lb2 BACKUP "$t0")
	local after=none
	_ha_num "$ev" && after=$((t0 + ev - th))
	echo "  figure: heal: routes removed between +0 and +$((th - t0)) ms; lb2 stepped down to BACKUP at +$ev ms," \
		"$after ms after the heal was complete (bound 2 x $iv ms); roles now lb1 $(rig_role lb1), lb2 $(rig_role lb2)"
	rig_assert "one MASTER within two advert intervals of the heal ($after <= $((2 * iv)) ms)" \
		eval '_ha_one_master && [ "$after" != none ] && [ "$after" -le $((2 * iv)) ]' || r=1
	m=$(_ha_settle 10000)
	rig_assert "the pair settled (MASTER ${m:-none}, VIP on [$(rig_vip_holders)])" [ -n "$m" ] || r=1
	line=$(rig_probe_stop probe-partition)
	_ha_probe_figure "partition and heal (c1, whole drill)" "$line" probe-partition
	# Clients reach the VIP: 1 s of probing with no failure, and a session from c2.
	if rig_probe_start c1 probe-healed 2; then
		sleep 1
		line=$(rig_probe_stop probe-healed)
		_ha_probe_figure "after the heal (1 s)" "$line" probe-healed
	else
		line=$(rig_probe_stop probe-healed)
	fi
	rig_assert "after the heal c1's probe reaches the VIP every time ($(_ha_p "$line" failures) failed of $(_ha_p "$line" attempts))" \
		eval '[ "$(_ha_p "$line" failures)" = 0 ] && [ "$(_ha_p "$line" ok)" -gt 0 ]' || r=1
	s=$(rig_curl c2 explicit "$RIG_VIP" server.txt)
	rig_assert "after the heal c2's FTPS session via the VIP works ('$s')" rig_is_server "$s" || r=1
	return $r
}

# Two heartbeat paths: a direct link between lb1 and lb2 (hb0, 10.254.0.0/30,
# inside the rig's namespaces only) is peer.address's second entry.  With
# the first path cut (blackhole routes to the peer's eth0 address, as
# ha_partition) adverts go on over the second: no role change, the peer
# stays alive, clients see nothing, and the sync channel moves to the
# second path, so a new sticky entry still reaches lb2.  With both cut:
# split brain, as with one path, which shows the second one carried them.
# The pair gets its one-path config back at the end.
HA_HB_NET=10.254.0

drill_ha_paths() {
	local r
	_ha_paths_drill
	r=$?
	_ha_partition del 2>/dev/null
	ip -n "$(rig_ns lb1)" link del hb0 2>/dev/null
	( _ha_restart_pair ) || { rig_fail "the pair did not restart with one path"; r=1; }
	return $r
}

# NODE's ha.role_changes.
_ha_role_changes() {
	local -A st
	rig_status_into "$1" st && echo "${st[ha.role_changes]}"
}

_ha_paths_drill() {
	local n o i=1 c1 c2 line t0 ms got r=0 iv=$(_ha_iv) ip=192.168.86.250
	ip link add hb0 netns "$(rig_ns lb1)" type veth peer name hb0 netns "$(rig_ns lb2)" ||
		{ rig_fail "cannot make the hb0 link"; return 1; }
	for n in lb1 lb2; do
		o=$(rig_lb_other "$n")
		rig_exec "$n" ip addr add "$HA_HB_NET.$i/30" dev hb0 && rig_exec "$n" ip link set hb0 up ||
			{ rig_fail "cannot address hb0 on $n"; return 1; }
		i=$((i + 1))
		# peer.address: [ eth0 address, hb0 address ]
		sed -i "s|^peer = { name = \"$o\"; address = \"${RIG_ADDR[$o]}\"; };|peer = { name = \"$o\"; address = [ \"${RIG_ADDR[$o]}\", \"$HA_HB_NET.$([ "$o" = lb1 ] && echo 1 || echo 2)\" ]; };|" \
			"$RIG_DIR/$n.conf"
	done
	rig_assert "both configs name two peer paths ($(grep -h '^peer' "$RIG_DIR/lb1.conf"))" \
		eval 'grep -q "address = \[" "$RIG_DIR/lb1.conf" && grep -q "address = \[" "$RIG_DIR/lb2.conf"' || return 1
	rig_lb_stop lb2
	rig_lb_stop lb1
	( rig_lb_start lb1 && rig_lb_wait_ready lb1 && rig_lb_start lb2 && rig_lb_wait_ready lb2 novip ) ||
		{ rig_fail "the pair did not start with two paths"; return 1; }
	rig_wait 10000 rig_ha_master_is lb1
	rig_assert "two paths: lb1 MASTER, lb2 BACKUP" rig_ha_master_is lb1 || return 1
	rig_assert "both synced before the cut" \
		rig_wait 10000 eval '[ "$(rig_sval "$(rig_status lb1)" sync.state)" = synced ] && [ "$(rig_sval "$(rig_status lb2)" sync.state)" = synced ]' || return 1

	c1=$(_ha_role_changes lb1)
	c2=$(_ha_role_changes lb2)
	rig_probe_start c1 probe-paths 30 || return 1
	sleep 0.3
	t0=$(rig_ms)
	_ha_partition add || { rig_fail "could not add the blackhole routes"; rig_probe_stop probe-paths >/dev/null; return 1; }
	sleep "$(awk -v iv="$iv" 'BEGIN { print iv * 10 / 1000 }')"
	rig_assert "first path cut for 10 advert intervals: lb1 MASTER, lb2 BACKUP, no role change (lb1 $c1 -> $(_ha_role_changes lb1), lb2 $c2 -> $(_ha_role_changes lb2))" \
		eval 'rig_role_is lb1 MASTER && rig_role_is lb2 BACKUP && [ "$(_ha_role_changes lb1)" = "$c1" ] && [ "$(_ha_role_changes lb2)" = "$c2" ]' || r=1
	rig_assert "each sees the other alive over the second path (lb1: $(rig_sval "$(rig_status lb1)" peer.state), lb2: $(rig_sval "$(rig_status lb2)" peer.state))" \
		eval '[ "$(rig_sval "$(rig_status lb1)" peer.state) $(rig_sval "$(rig_status lb2)" peer.state)" = "alive alive" ]' || r=1
	# Replication: the channel finds the first path dead (3 s of silence) and reconnects on the second.
	rig_lbctl lb1 sticky set "$ip" FTP_SVR2 >/dev/null 2>&1
	rig_wait 10000 eval '[ "$(rig_sticky_of lb2 "$ip")" = FTP_SVR2 ]'
	ms=$(( $(rig_ms) - t0 ))
	got=$(rig_sticky_of lb2 "$ip")
	echo "  figure: with the first path cut, a sticky set on lb1 was on lb2 ${ms} ms after the cut ('$got'); sync lb1 $(rig_sval "$(rig_status lb1)" sync.state)"
	rig_assert "a sticky entry set on lb1 reaches lb2 over the second path ('$got')" [ "$got" = FTP_SVR2 ] || r=1
	line=$(rig_probe_stop probe-paths)
	_ha_probe_figure "first path cut (c1)" "$line" probe-paths "$t0"
	rig_assert "no probe failed while the first path was cut ($(_ha_p "$line" failures) of $(_ha_p "$line" attempts))" \
		eval '[ "$(_ha_p "$line" failures)" = 0 ] && [ "$(_ha_p "$line" ok)" -gt 0 ]' || r=1

	# Both cut: lb2 takes over, as with one path.
	rig_exec lb1 ip link set hb0 down
	rig_wait_fast 5000 rig_role_is lb2 MASTER
	rig_assert "both paths cut: lb2 becomes MASTER too (the second path had carried the adverts)" \
		rig_role_is lb2 MASTER || r=1
	rig_exec lb1 ip link set hb0 up
	_ha_partition del
	rig_wait 5000 _ha_one_master
	rig_assert "healed: one MASTER again" _ha_one_master || r=1
	rig_lbctl lb1 sticky flush >/dev/null 2>&1
	return $r
}

# The MASTER's link goes down (carrier lost, switch side): it goes FAULT,
# drops the VIP, and the peer takes over; link back: the pair settles.
drill_ha_linkdown() {
	local t0 line r=0 m iv=$(_ha_iv) held
	rig_probe_start c1 probe-linkdown 20 || return 1
	sleep 0.3
	t0=$(rig_ms)
	rig_link lb1 down
	rig_wait_fast 3000 rig_role_is lb1 FAULT
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	sleep 0.5
	line=$(rig_probe_stop probe-linkdown)
	echo "  figure: link down on lb1: lb1 FAULT after $(_ha_ev lb1 FAULT "$t0") ms, lb2 MASTER after $(_ha_ev lb2 MASTER "$t0") ms"
	_ha_probe_figure "the MASTER's link down" "$line" probe-linkdown "$t0"
	rig_assert "lb1 is FAULT (role $(rig_role lb1))" rig_role_is lb1 FAULT || r=1
	held=$(rig_sval "$(rig_status lb1)" vip.held)
	rig_assert "lb1 removed the VIP (vip.held $held, on eth0: $(_rig_vip_on lb1 && echo yes || echo no))" \
		eval '! _rig_vip_on lb1 && [ "$held" = false ]' || r=1
	rig_assert "lb2 took over with the VIP (role $(rig_role lb2))" \
		eval 'rig_role_is lb2 MASTER && _rig_vip_on lb2' || r=1
	t0=$(rig_ms)
	rig_link lb1 up
	rig_wait_fast 3000 eval '! rig_role_is lb1 FAULT'
	echo "  figure: link up: lb1 left FAULT after $(( $(rig_ms) - t0 )) ms (now $(rig_role lb1))"
	m=$(_ha_settle 15000)
	rig_assert "link back: the pair settled with the VIP on one node (MASTER ${m:-none})" \
		[ -n "$m" ] || r=1
	return $r
}

# Forged (wrong key), replayed, truncated and random datagrams to both
# nodes' heartbeat port from c2: roles unchanged, each kind counted.
drill_ha_forged() {
	local cap=$RIG_DIR/adverts.cap out r=0 n me other src dst
	local -A before after sent_mal sent_auth sent_rep
	rig_lbctl lb1 --json status >/dev/null || return 1
	(umask 077 && "$RIG_LBD" --genkey >"$RIG_DIR/wrong.key") || { rig_fail "lbd --genkey"; return 1; }
	for n in lb1 lb2; do before[$n]=$(_ha_snap "$n"); done
	rig_probe_start c1 probe-forged 60 || return 1

	out=$(rig_hb lb1 capture --iface eth0 --port 7411 --seconds 1.5 --out "$cap")
	rig_assert "captured real adverts on lb1's eth0: $out" \
		eval 'grep -q "\"${RIG_ADDR[lb1]}\"" <<<"$out" && grep -q "\"${RIG_ADDR[lb2]}\"" <<<"$out"' || return 1

	for me in lb1 lb2; do
		other=$(rig_lb_other "$me")
		dst=${RIG_ADDR[$me]}
		src=${RIG_ADDR[$other]}	# the peer's adverts, as captured
		sent_mal[$me]=0 sent_auth[$me]=0 sent_rep[$me]=0
		# Random: 20 malformed (bad version byte or size), 20 frame-shaped.
		out=$(rig_hb c2 garbage --host "$dst" --count 20)
		echo "  -> $me random: $out"
		sent_mal[$me]=$(( sent_mal[$me] + $(rig_jval malformed_sent <<<"$out") + 0 ))
		sent_auth[$me]=$(( sent_auth[$me] + $(rig_jval framelike_sent <<<"$out") + 0 ))
		# Truncated copies of the peer's real adverts: 1, 10, 40 bytes are
		# shorter than any frame (malformed); 1 and 16 bytes short fail the tag.
		out=$(rig_hb c2 replay --host "$dst" --file "$cap" --src "$src" --truncate=1,10,40 --max 5)
		echo "  -> $me truncated (short): $out"
		sent_mal[$me]=$(( sent_mal[$me] + $(rig_jval sent <<<"$out") + 0 ))
		out=$(rig_hb c2 replay --host "$dst" --file "$cap" --src "$src" --truncate=-1,-16 --max 5)
		echo "  -> $me truncated (tag cut): $out"
		sent_auth[$me]=$(( sent_auth[$me] + $(rig_jval sent <<<"$out") + 0 ))
		# Forged: the peer's name, MASTER priority 254, sealed with another key.
		out=$(rig_hb c2 forge --host "$dst" --key "$RIG_DIR/wrong.key" --node "$other" \
			--addr "$src" --count 20)
		echo "  -> $me forged with a wrong key: $out"
		sent_auth[$me]=$(( sent_auth[$me] + $(rig_jval forged_sent <<<"$out") + 0 ))
		# Replayed: the peer's own captured adverts, unchanged.
		out=$(rig_hb c2 replay --host "$dst" --file "$cap" --src "$src" --max 20)
		echo "  -> $me replayed: $out"
		sent_rep[$me]=$(rig_jval sent <<<"$out")
		_ha_num "${sent_rep[$me]}" || sent_rep[$me]=0
		# Control: the right key and an unknown node name (proves the forger
		# seals exactly as lbd does: these pass authentication).
		out=$(rig_hb c2 forge --host "$dst" --key "$RIG_DIR/cluster.key" --node intruder \
			--addr "$(rig_client_ip 2)" --count 5)
		echo "  -> $me sealed with the cluster key, node 'intruder': $out"
	done
	sleep 0.5
	for n in lb1 lb2; do after[$n]=$(_ha_snap "$n"); done
	out=$(rig_probe_stop probe-forged)
	# A figure only: on a busy 2-CPU machine a greeting can pass 250 ms.
	_ha_probe_figure "during the forged traffic" "$out" probe-forged

	for n in lb1 lb2; do
		local b=${before[$n]} a=${after[$n]} k i d
		local names=(role role_changes adverts_received auth_failures replays malformed unknown_sender)
		local fig="$n:"
		for ((i = 2; i <= 7; i++)); do
			fig="$fig ${names[i - 1]} $(_ha_f "$b" $i)->$(_ha_f "$a" $i)"
		done
		echo "  figure: $fig"
		rig_assert "$n: role unchanged ($(_ha_f "$b" 1) -> $(_ha_f "$a" 1)), no role change" \
			eval '[ "$(_ha_f "$b" 1)" = "$(_ha_f "$a" 1)" ] && _ha_num "$(_ha_f "$a" 2)" && [ "$(_ha_f "$b" 2)" = "$(_ha_f "$a" 2)" ]' || r=1
		for k in 4:auth_failures:${sent_auth[$n]} 5:replays:${sent_rep[$n]} 6:malformed:${sent_mal[$n]} 7:unknown_sender:5; do
			IFS=: read -r i name want <<<"$k"
			d=-
			_ha_num "$(_ha_f "$a" "$i")" && _ha_num "$(_ha_f "$b" "$i")" &&
				d=$(( $(_ha_f "$a" "$i") - $(_ha_f "$b" "$i") ))
			rig_assert "$n: ha.$name counted them (+$d, sent $want)" \
				eval '_ha_num "$d" && [ "$d" -ge "$want" ]' || r=1
		done
	done
	rig_assert "settled as before: MASTER $(rig_ha_master), VIP on [$(rig_vip_holders)]" \
		rig_ha_master_is lb1 || r=1
	return $r
}

# "role role_changes peer_unreachable sync_state reconnects md5_notfound"
# of NODE; md5_notfound is the kernel's TcpExtTCPMD5NotFound in its
# namespace: segments dropped for lacking the signature their socket expects.
_ha_close_snap() {
	local -A st
	local nf
	rig_status_into "$1" st || { echo down; return 1; }
	nf=$(rig_exec "$1" nstat -asz TcpExtTCPMD5NotFound 2>/dev/null | awk '$1 == "TcpExtTCPMD5NotFound" { print $2 }')
	echo "${st[role]:--} ${st[ha.role_changes]:--} ${st[ha.peer_unreachable]:--}" \
		"${st[sync.state]:--} ${st[sync.channel.reconnects]:--} ${nf:--}"
}

# Runs the forger (tcpforge.py) in the switch namespace.
_ha_forge() { rig_exec sw timeout 20 python3 "$RIG_SRC/tcpforge.py" "$@"; }

# Asserts that neither node changed role nor lost its sync channel since
# the snapshots in the caller's before[] (after "what").
_ha_close_unchanged() {
	local what=$1 n b a r=0
	sleep 0.6	# 6 advert intervals: a takeover would be done by now
	for n in lb1 lb2; do
		b=${before[$n]}
		a=$(_ha_close_snap "$n")
		rig_assert "after $what: $n role $(_ha_f "$a" 1) (was $(_ha_f "$b" 1)), role_changes $(_ha_f "$b" 2)->$(_ha_f "$a" 2), sync $(_ha_f "$a" 4), channel reconnects $(_ha_f "$b" 5)->$(_ha_f "$a" 5)" \
			eval '_ha_num "$(_ha_f "$a" 2)" && [ "$(_ha_f "$b" 1)/$(_ha_f "$b" 2)/$(_ha_f "$b" 5)" = "$(_ha_f "$a" 1)/$(_ha_f "$a" 2)/$(_ha_f "$a" 5)" ] && [ "$(_ha_f "$a" 4)" = synced ]' || r=1
	done
	return $r
}

# Forged "peer died" evidence during steady adverts (issue 13, point 1),
# sent by tcpforge.py from the switch namespace as any host on the segment
# could: (a) 3 ICMP port unreachable to lb2 (BACKUP) from c2's address,
# quoting lb2's own advert to lb1; (b) an RST and (c) a FIN+ACK to lb2 on
# the established sync connection, from lb1's address and port, with
# exactly the sequence number lb2 expects next (sniffed off the bridge);
# (d) an RST to lb1 (MASTER) the same way.  Asserts after each: no role
# change on either node, the sync channel still up (no reconnect); the
# ICMP counted in ha.peer_unreachable; the forged segments dropped by the
# kernel for lacking the TCP_MD5SIG signature (TcpExtTCPMD5NotFound).
drill_ha_forged_close() {
	local -A before
	local n out r=0 lb1ip=${RIG_ADDR[lb1]} lb2ip=${RIG_ADDR[lb2]} b a
	rig_wait 5000 eval '[ "$(rig_sval "$(rig_status lb2)" sync.state)" = synced ]' ||
		{ rig_fail "the sync channel is not up before the drill"; return 1; }
	for n in lb1 lb2; do
		b=$(rig_sval "$(rig_status "$n")" sync.channel.tcp_md5)
		rig_assert "$n: sync connection signed (sync.channel.tcp_md5 '$b')" [ "$b" = true ] || r=1
	done
	for n in lb1 lb2; do before[$n]=$(_ha_close_snap "$n"); done
	echo "  start: lb1 ${before[lb1]}; lb2 ${before[lb2]} (role role_changes peer_unreachable sync reconnects md5_notfound)"

	out=$(_ha_forge icmp --victim "$lb2ip" --peer "$lb1ip" --src "$(rig_client_ip 2)" --count 3)
	echo "  -> lb2: forged ICMP port unreachable: $out"
	rig_assert "3 forged ICMP sent" eval '[ "$(rig_jval sent <<<"$out")" = 3 ]' || return 1
	_ha_close_unchanged "the forged ICMP" || r=1
	a=$(_ha_close_snap lb2)
	rig_assert "lb2 counted the ICMP: ha.peer_unreachable $(_ha_f "${before[lb2]}" 3)->$(_ha_f "$a" 3)" \
		eval '_ha_num "$(_ha_f "$a" 3)" && [ "$(_ha_f "$a" 3)" -gt "$(_ha_f "${before[lb2]}" 3)" ]' || r=1

	out=$(_ha_forge tcp --victim "$lb2ip" --peer "$lb1ip" --flags R)
	echo "  -> lb2: forged in-window RST: $out"
	rig_assert "forged RST sent" eval '[ "$(rig_jval sent <<<"$out")" = 1 ]' || return 1
	_ha_close_unchanged "the forged RST to lb2" || r=1

	out=$(_ha_forge tcp --victim "$lb2ip" --peer "$lb1ip" --flags F)
	echo "  -> lb2: forged in-window FIN: $out"
	rig_assert "forged FIN sent" eval '[ "$(rig_jval sent <<<"$out")" = 1 ]' || return 1
	_ha_close_unchanged "the forged FIN to lb2" || r=1

	out=$(_ha_forge tcp --victim "$lb1ip" --peer "$lb2ip" --flags R)
	echo "  -> lb1: forged in-window RST: $out"
	rig_assert "forged RST sent" eval '[ "$(rig_jval sent <<<"$out")" = 1 ]' || return 1
	_ha_close_unchanged "the forged RST to lb1" || r=1

	for n in lb1 lb2; do
		b=${before[$n]}
		a=$(_ha_close_snap "$n")
		echo "  figure: $n TcpExtTCPMD5NotFound $(_ha_f "$b" 6)->$(_ha_f "$a" 6)"
	done
	b=${before[lb2]}; a=$(_ha_close_snap lb2)
	rig_assert "lb2's kernel dropped the forged RST and FIN for lacking the signature (TCPMD5NotFound +$(( $(_ha_f "$a" 6) - $(_ha_f "$b" 6) )))" \
		eval '_ha_num "$(_ha_f "$a" 6)" && [ $(( $(_ha_f "$a" 6) - $(_ha_f "$b" 6) )) -ge 2 ]' || r=1
	rig_assert "settled as before: MASTER $(rig_ha_master 2>/dev/null)" rig_ha_master_is lb1 || r=1
	return $r
}

# Issue 13.3: adverts recorded from the MASTER cannot hide its death from
# a node that restarts. lb1's MASTER adverts are captured on lb2's eth0
# for 6 s; lb1 powers off (eth0 down, lbd killed: no ICMP, no sync EOF);
# lb2 restarts while c2 plays the recording to it at its own pace. lb2
# must take over at Master_Down after its start (+ slack), take none of
# the recording (ha.adverts_received 0, ha.stale counts it), and stay
# MASTER to the end of it. Under the old boot_id rule it stayed BACKUP for
# as long as the recording played.
drill_ha_replay() {
	local cap=$RIG_DIR/replay.cap out r=0 iv=$(_ha_iv) md slack t0 tb tm rp st m
	md=$((3 * iv + (256 - 100) * iv / 1024))
	slack=$((iv + 100))
	rig_assert "lb1 MASTER before the recording" rig_ha_master_is lb1 || return 1
	out=$(rig_hb lb2 capture --iface eth0 --port 7411 --seconds 6 --out "$cap")
	rig_assert "recorded lb1's adverts on lb2's eth0: $out" \
		eval 'grep -q "\"${RIG_ADDR[lb1]}\"" <<<"$out"' || return 1
	t0=$(rig_ms)
	rig_exec lb1 ip link set eth0 down
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	rig_lb_stop lb2
	# The recording plays from before lb2's start to well past Master_Down.
	rig_hb c2 replay --host "${RIG_ADDR[lb2]}" --file "$cap" --src "${RIG_ADDR[lb1]}" \
		--max 60 --gap-ms "$iv" >"$RIG_DIR/replay.out" &
	rp=$!
	sleep 0.3
	rig_lb_start lb2
	wait "$rp"
	out=$(cat "$RIG_DIR/replay.out")
	tm=none
	tb=$(rig_role_event_ms lb2 BACKUP "$RIG_LB_STARTED_MS") &&
		m=$(rig_role_event_ms lb2 MASTER "$RIG_LB_STARTED_MS") && tm=$((m - tb))
	st=$(rig_status lb2)
	echo "  figure: lb2 restarted while lb1's recorded adverts played ($out): MASTER ${tm} ms" \
		"after its start as BACKUP (Master_Down $md ms); ha.adverts_received" \
		"$(rig_sval "$st" ha.adverts_received), ha.stale $(rig_sval "$st" ha.stale)," \
		"ha.replays $(rig_sval "$st" ha.replays)"
	rig_assert "lb2 took over within Master_Down + $slack ms of its start (${tm} ms)" \
		eval '_ha_num "$tm" && [ "$tm" -le $((md + slack)) ]' || r=1
	rig_assert "lb2 is MASTER after the whole recording, with the VIP (role $(rig_role lb2))" \
		eval 'rig_role_is lb2 MASTER && _rig_vip_on lb2' || r=1
	rig_assert "lb2 took none of the recording (adverts_received $(rig_sval "$st" ha.adverts_received), stale $(rig_sval "$st" ha.stale))" \
		eval '[ "$(rig_sval "$st" ha.adverts_received)" = 0 ] && _ha_num "$(rig_sval "$st" ha.stale)" && [ "$(rig_sval "$st" ha.stale)" -gt 0 ]' || r=1
	# Power on: lb1 rejoins and, with preempt, is MASTER again.
	rig_exec lb1 ip link set eth0 up
	rig_lb_restart_systemd lb1 "$t0"
	m=$(_ha_settle 15000)
	rig_assert "lb1 back: the pair settled with one MASTER (${m:-none})" [ -n "$m" ] || r=1
	return $r
}

# One client's transfer loop: big.bin through the VIP, again and again,
# until END_MS (bounded by count and curl --max-time); prints bytes and
# the number of transfers, then failures.
# Prints "BYTES TRANSFERS FAILED CUT": CUT counts the last transfer, which
# the loop's deadline stops (curl --max-time, exit 28); FAILED any other error.
_ha_load_loop() {
	local node=$1 end=$2 i bytes=0 n=0 fails=0 cut=0 left got rc
	for ((i = 0; i < 2000; i++)); do
		left=$(( (end - $(rig_ms)) / 1000 ))
		((left >= 1)) || break
		got=$(rig_curl "$node" explicit "$RIG_VIP" big.bin -o /dev/null --max-time "$left" \
			-w '%{size_download}' 2>/dev/null)
		rc=$?
		if [ "$rc" = 28 ]; then
			cut=$((cut + 1))
		elif [ "$rc" != 0 ]; then
			fails=$((fails + 1))
			echo "  transfer $n from $node failed: curl exit $rc after ${got:-0} bytes" >&2
		fi
		bytes=$((bytes + ${got:-0}))
		n=$((n + 1))
	done
	echo "$bytes $n $fails $cut"
}

# No false failover during a 30 s full-speed transfer at 20 ms adverts.
drill_ha_load() {
	local RIG_ADVERT_MS=20 secs=${RIG_LOAD_SECONDS:-30} b1 b2 a1 a2 t0 end r=0 line m
	export RIG_ADVERT_MS
	rig_log "  restarting the pair with advert_interval_ms = $RIG_ADVERT_MS"
	_ha_restart_pair
	m=$(_ha_settle 15000)
	rig_assert "pair up at 20 ms adverts, settled (MASTER ${m:-none})" [ "$m" = lb1 ] || return 1
	b1=$(_ha_snap lb1)
	b2=$(_ha_snap lb2)
	rig_probe_start c1 probe-load $((secs + 15)) || return 1
	t0=$(rig_ms)
	end=$((t0 + secs * 1000))
	_ha_load_loop c1 "$end" >"$RIG_DIR/load-c1.out" &
	local p1=$!
	_ha_load_loop c2 "$end" >"$RIG_DIR/load-c2.out" &
	local p2=$!
	wait $p1 $p2
	local el=$(( $(rig_ms) - t0 ))
	line=$(rig_probe_stop probe-load)
	a1=$(_ha_snap lb1)
	a2=$(_ha_snap lb2)
	local x1 x2 bytes n n2 fails f2 cut c2
	read -r x1 n fails cut <<<"$(cat "$RIG_DIR/load-c1.out")"
	read -r x2 n2 f2 c2 <<<"$(cat "$RIG_DIR/load-c2.out")"
	bytes=$(( ${x1:-0} + ${x2:-0} ))
	awk -v b="$bytes" -v ms="$el" -v n="$((n + n2))" -v f="$((fails + f2))" -v c="$((cut + c2))" 'BEGIN {
		printf "  figure: load: %d transfers of big.bin (c1 + c2 in parallel), %.0f MB in %.1f s = %.0f MB/s (%.2f Gbit/s), %d failed, %d cut by the deadline\n",
		    n, b / 1e6, ms / 1000, b / 1e3 / ms, b * 8 / 1e6 / ms, f, c }'
	echo "  figure: load: role_changes lb1 $(_ha_f "$b1" 2)->$(_ha_f "$a1" 2), lb2 $(_ha_f "$b2" 2)->$(_ha_f "$a2" 2);" \
		"adverts received lb1 +$(( $(_ha_f "$a1" 3) - $(_ha_f "$b1" 3) )), lb2 +$(( $(_ha_f "$a2" 3) - $(_ha_f "$b2" 3) )) (expect ~$((el / RIG_ADVERT_MS)) each)"
	_ha_probe_figure "probe during the load (not asserted: a loaded 2-CPU box delays greetings)" "$line" probe-load
	local st1 st2
	st1=$(rig_status lb1)
	st2=$(rig_status lb2)
	echo "  figure: load: adverts the pacer thread sent for a late loop: lb1 $(rig_sval "$st1" ha.adverts_paced), lb2 $(rig_sval "$st2" ha.adverts_paced); watchdog lapses lb1 $(rig_sval "$st1" ha.advert_lapses), lb2 $(rig_sval "$st2" ha.advert_lapses)"
	rig_assert "the advert pacer is real-time on both (lb1 $(rig_sval "$st1" ha.advert_realtime), lb2 $(rig_sval "$st2" ha.advert_realtime)) and never lapsed" \
		eval '[ "$(rig_sval "$st1" ha.advert_realtime)" = true ] && [ "$(rig_sval "$st2" ha.advert_realtime)" = true ] && [ "$(rig_sval "$st1" ha.advert_lapses)" = 0 ] && [ "$(rig_sval "$st2" ha.advert_lapses)" = 0 ]' || r=1
	rig_assert "the load ran at full speed for ${secs} s ($((bytes / 1000000)) MB moved)" \
		[ "$bytes" -gt $((64 * 1024 * 1024)) ] || r=1
	rig_assert "no transfer failed under load ($((${fails:-0} + ${f2:-0})) failed; the last one of each loop is cut by the deadline, not counted)" \
		[ "$((${fails:-1} + ${f2:-1}))" = 0 ] || r=1
	rig_assert "no false failover: role_changes unchanged on both" \
		eval '_ha_num "$(_ha_f "$a1" 2)" && [ "$(_ha_f "$b1" 2)" = "$(_ha_f "$a1" 2)" ] && [ "$(_ha_f "$b2" 2)" = "$(_ha_f "$a2" 2)" ]' || r=1
	rig_assert "lb1 still MASTER, VIP on [$(rig_vip_holders)] only" rig_ha_master_is lb1 || r=1
	# Back to 100 ms adverts for whatever runs next.
	RIG_ADVERT_MS=100
	_ha_restart_pair
	return $r
}
