# drill-mirror.sh - connection mirroring (SPEC section 11): FTPS sessions
# survive the MASTER's unplanned death.  Pair drills (RIG_LB_NODES="lb1
# lb2", after ha_reset: lb1 MASTER, lb2 BACKUP, both real servers up).
#
#   mirror_crash     30 idle FTPS sessions across kill -9 of lb1's lbd, all
#                    rebuilt from lb2's standby sockets (closed when the
#                    sessions move, made again once they are quiet)
#   mirror_poweroff  the same across a power-off (link down, then kill -9)
#   mirror_lftp      a 64 MiB lftp download, then a 64 MiB upload
#                    (sessions.py put), across kill -9: right sha256 on ONE
#                    login (REST on the same control connection when the
#                    data connection is reset)
#   mirror_load      64 loops of short connections plus 30 idle sessions
#                    across kill -9: none hangs, the idle ones survive
#   mirror_return    sessions that survived a crash survive lb1's return
#                    and its preemption (planned handover, steering)
#
# The held sessions are sessions.py (hold: phase 1 before the event, phase
# 2 on the same control connections after it, triggered by a file), half
# from c1 (.100), half from c2 (.210-.212, added here); the short
# connections are sessions.py load from c2 (.200-.207).  Mirroring is on in
# the configs when RIG_MIRROR=1 (lib.sh); until lbd mirrors, every drill
# here fails ("survived 0 of 30").
#
# MIRROR_NOKILL=1 is the control run: everything but the event (no kill,
# no power-off, no restart); mirror_lftp instead resets only the data
# connection on lb1 (ss -K: what a takeover does to an unmirrored data
# port, as far as the client sees it), mirror_return does a planned
# `lbctl failover` instead of the crash and return.  Every drill must pass
# that way: it proves the drills measure the event, not a broken client.

MIRROR_N=${MIRROR_N:-30}		# held sessions per drill
MIRROR_LOOPS=${MIRROR_LOOPS:-64}	# loops of short connections (mirror_load)
MIRROR_RATE=${MIRROR_RATE:-8M}		# lftp's rate limit, bytes/s (lftp suffixes)

_mirror_nokill() { [ "${MIRROR_NOKILL:-0}" = 1 ]; }

# What the run does to lb1, for figures.
_mirror_what() { _mirror_nokill && echo "no event (control run, MIRROR_NOKILL=1)" || echo "$1"; }

# Comma-separated rig addresses .FIRST-.LAST, put on client NODE's eth0.
_mirror_src() {
	local node=$1 first=$2 last=$3 i out=
	for ((i = first; i <= last; i++)); do
		# shellcheck disable=SC2046
		ip -n "$(rig_ns "$node")" addr replace "$(rig_host "$i")/$(rig_net_plen)" dev eth0 \
			$([ "$RIG_IP6" = 1 ] && echo nodad) 2>/dev/null || return 1
		out="$out,$(rig_host "$i")"
	done
	echo "${out#,}"
}

# "pairs held rebuilt reset rebuild_ms standby rebuilt_standby" of NODE's mirror status keys
# ("-" for an absent key: lbd without mirroring has none).
_mirror_keys() {
	local -A st
	local k out=
	rig_status_into "$1" st || { echo "down down down down down down down"; return 0; }
	for k in pairs held rebuilt reset rebuild_ms standby rebuilt_standby; do
		out="$out ${st[mirror.$k]:--}"
	done
	echo "${out# }"
}

# One figure line of NODE's mirror keys, after WHAT.
_mirror_keys_figure() {
	local keys
	read -ra keys <<<"$(_mirror_keys "$1")"
	echo "  figure: $2: $1 mirror.pairs ${keys[0]}, mirror.held ${keys[1]}, mirror.rebuilt ${keys[2]}," \
		"mirror.reset ${keys[3]}, mirror.rebuild_ms ${keys[4]}, mirror.standby ${keys[5]}," \
		"mirror.rebuilt_standby ${keys[6]}" \
		"(mirror = $([ "${RIG_MIRROR:-0}" = 1 ] && echo true || echo false) in the configs)"
}

# Starts TAG's held sessions: MIRROR_N, half from c1 and half from c2,
# ROUNDS phase-2 rounds, and waits (20 s) until both processes are ready.
# Usage: _mirror_hold TAG ROUNDS
_mirror_hold() {
	local tag=$1 rounds=$2 n1 n2 src node opened=0 o1 o2 lim
	n1=$((MIRROR_N / 2))
	n2=$((MIRROR_N - n1))
	src=$(_mirror_src c2 210 212) || { rig_fail "cannot add c2's source addresses"; return 1; }
	rm -f "$RIG_DIR/mirror-$tag".*
	# Bound on the whole process: every round's wait, plus its own work.
	lim=$((rounds * 45 + 30))
	rig_bg c1 "mirror-$tag-c1" "$RIG_DIR/mirror-$tag.c1.log" timeout "$lim" \
		python3 "$RIG_SRC/sessions.py" --tls-max "$RIG_TLS_MAX" hold "$RIG_VIP" --count "$n1" \
		--go "$RIG_DIR/mirror-$tag.go" --rounds "$rounds" --ready "$RIG_DIR/mirror-$tag.c1.ready" \
		--max-wait 40 --timeout 5
	rig_bg c2 "mirror-$tag-c2" "$RIG_DIR/mirror-$tag.c2.log" timeout "$lim" \
		python3 "$RIG_SRC/sessions.py" --tls-max "$RIG_TLS_MAX" hold "$RIG_VIP" --count "$n2" \
		--go "$RIG_DIR/mirror-$tag.go" --rounds "$rounds" --ready "$RIG_DIR/mirror-$tag.c2.ready" \
		--max-wait 40 --timeout 5 --source "$src"
	for node in c1 c2; do
		rig_wait 20000 test -s "$RIG_DIR/mirror-$tag.$node.ready" ||
			{ rig_fail "$node's sessions not ready in 20 s: $(tail -2 "$RIG_DIR/mirror-$tag.$node.log")"; return 1; }
	done
	o1=$(cat "$RIG_DIR/mirror-$tag.c1.ready")
	o2=$(cat "$RIG_DIR/mirror-$tag.c2.ready")
	opened=$(( $(_mirror_n opened "$o1") + $(_mirror_n opened "$o2") ))
	echo "  figure: phase 1: $opened of $MIRROR_N sessions open, logged in, LIST + RETR server.txt done" \
		"(explicit $(( $(_mirror_n explicit "$o1") + $(_mirror_n explicit "$o2") )), implicit" \
		"$(( $(_mirror_n implicit "$o1") + $(_mirror_n implicit "$o2") )); real servers: c1" \
		"FTP_SVR1 $(_mirror_n FTP_SVR1 "$o1") FTP_SVR2 $(_mirror_n FTP_SVR2 "$o1"), c2" \
		"FTP_SVR1 $(_mirror_n FTP_SVR1 "$o2") FTP_SVR2 $(_mirror_n FTP_SVR2 "$o2"); TLS $(rig_jval tls <<<"$o1");" \
		"c1 $(_mirror_n elapsed_ms "$o1") ms, c2 $(_mirror_n elapsed_ms "$o2") ms)"
	rig_assert "all $MIRROR_N sessions ready before the event ($opened$(_mirror_err "$o1" "$o2"))" \
		[ "$opened" = "$MIRROR_N" ] || return 1
	# A pair is mirrored once it lived 200 ms (mirror.c, MIRROR_LAZY_MS): wait for lb2 to hold them.
	[ "$RIG_MIRROR" = 1 ] || return 0
	rig_wait 5000 _mirror_held_at_least lb2 "$MIRROR_N" ||
		rig_log "  lb2 holds $(rig_sval "$(rig_status lb2)" mirror.held) pairs of $MIRROR_N after 5 s"
	# MIRROR_STANDBY=1: and for lb2's standby sockets of them (quiet 500 ms, mirror_peer.c).
	[ "${MIRROR_STANDBY:-0}" = 1 ] || return 0
	rig_wait 5000 _mirror_standby_at_least lb2 "$MIRROR_N" ||
		rig_log "  lb2 has standby sockets for $(rig_sval "$(rig_status lb2)" mirror.standby) pairs of $MIRROR_N after 5 s"
	return 0
}

# Whether node $1 has standby sockets for at least $2 of its peer's pairs.
_mirror_standby_at_least() {
	local h
	h=$(rig_sval "$(rig_status "$1")" mirror.standby)
	[ -n "$h" ] && [ "$h" -ge "$2" ] 2>/dev/null
}

# Whether node $1 holds at least $2 of its peer's pairs.
_mirror_held_at_least() {
	local h
	h=$(rig_sval "$(rig_status "$1")" mirror.held)
	[ -n "$h" ] && [ "$h" -ge "$2" ] 2>/dev/null
}

# Number KEY of a sessions.py JSON line, 0 when absent.
_mirror_n() { local v; v=$(rig_jval "$1" <<<"$2"); echo "${v:-0}"; }

# "; TEXT" for each sessions.py line given with an error_top.
_mirror_err() {
	local l e
	for l in "$@"; do
		e=$(rig_jval error_top <<<"$l")
		[ -n "$e" ] && printf '; %s' "$e"
	done
}

# Stops TAG's session processes (by pid) if they still run.
_mirror_hold_stop() {
	rig_kill "mirror-$1-c1"
	rig_kill "mirror-$1-c2"
}

# Triggers round K of TAG's sessions and waits (45 s) for both results;
# sets MIRROR_SURVIVED, MIRROR_SAME (true/false), MIRROR_FIG (a summary).
# Usage: _mirror_go TAG K
_mirror_go() {
	local tag=$1 k=$2 node l n=0 same=true fig='' t0
	MIRROR_SURVIVED=0
	t0=$(rig_ms)
	touch "$RIG_DIR/mirror-$tag.go.$k"
	for node in c1 c2; do
		rig_wait 45000 grep -q "\"round\": $k," "$RIG_DIR/mirror-$tag.$node.log"
		l=$(grep "\"round\": $k," "$RIG_DIR/mirror-$tag.$node.log" | tail -1)
		if [ -z "$l" ]; then
			fig="$fig $node: no result in 45 s;"
			same=false
			continue
		fi
		n=$((n + $(_mirror_n survived "$l")))
		[ "$(rig_jval same_server <<<"$l")" = true ] || same=false
		fig="$fig $node $(rig_jval survived <<<"$l")/$(rig_jval sessions <<<"$l")"
		fig="$fig (slowest $(rig_jval slowest_ms <<<"$l" | sed "s/null/-/") ms$(_mirror_err "$l"));"
	done
	MIRROR_SURVIVED=$n
	MIRROR_SAME=$same
	MIRROR_FIG="phase 2 done $(( $(rig_ms) - t0 )) ms after the trigger;${fig%;}"
}

# Prints the figure of round K and asserts all survived on the same server.
# Usage: _mirror_round TAG K WHAT
_mirror_round() {
	local tag=$1 k=$2 what=$3
	_mirror_go "$tag" "$k"
	echo "  figure: $what: survived $MIRROR_SURVIVED of $MIRROR_N; $MIRROR_FIG"
	rig_assert "$what: survived $MIRROR_SURVIVED of $MIRROR_N (LIST + RETR on the same control connection, TLS session resumed)" \
		[ "$MIRROR_SURVIVED" = "$MIRROR_N" ] || return 1
	rig_assert "$what: every session still reaches the same real server" [ "$MIRROR_SAME" = true ]
}

# kill -9 of lb1's lbd (or, POWEROFF=1, link down first, then kill -9)
# and wait for lb2 MASTER; sets MIRROR_T0 (the event) and MIRROR_TAKEOVER
# (ms to lb2's role event, from its log).  No-op under MIRROR_NOKILL=1.
_mirror_kill() {
	local poweroff=${1:-0}
	MIRROR_T0=$(rig_ms)
	MIRROR_TAKEOVER=none
	if _mirror_nokill; then
		sleep 0.5
		return 0
	fi
	[ "$poweroff" = 1 ] && rig_exec lb1 ip link set eth0 down
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 5000 rig_role_is lb2 MASTER
	MIRROR_TAKEOVER=$(_ha_ev lb2 MASTER "$MIRROR_T0")
	rig_assert "lb2 took over: role $(rig_role lb2), VIP on lb2: $(_rig_vip_on lb2 && echo yes || echo no), $MIRROR_TAKEOVER ms after the event" \
		eval 'rig_role_is lb2 MASTER && _rig_vip_on lb2'
}

# lb1 back as systemd starts it (RestartSec after the event; after a
# power-off, its kernel's sockets cleared and link up first), then the
# pair settled with lb1 MASTER.  No-op under MIRROR_NOKILL=1.
_mirror_restore() {
	local poweroff=${1:-0} m tr
	_mirror_nokill && return 0
	if [ "$poweroff" = 1 ]; then
		# A powered-off node comes back with no TCP state: the rig's
		# "power-off" kept lb1's kernel, whose orphaned sockets would
		# otherwise send their FINs once the link is up.
		rig_exec lb1 ss -K -tn >/dev/null 2>&1
		rig_exec lb1 ip link set eth0 up
	fi
	rig_lb_restart_systemd lb1 "$MIRROR_T0"
	tr=$RIG_LB_STARTED_MS
	m=$(_ha_settle 15000)
	[ "$m" = lb1 ] || { rig_wait 10000 rig_ha_master_is lb1 && m=lb1; }
	echo "  figure: lb1 restarted $((tr - MIRROR_T0)) ms after the event; settled with MASTER ${m:-none}" \
		"$(( $(rig_ms) - tr )) ms after the restart"
	rig_assert "lb1 back, the pair settled with lb1 MASTER (${m:-none})" [ "$m" = lb1 ]
}

# ---------------------------------------------------------------- drills

# 30 idle FTPS sessions (20 explicit, 10 implicit) across kill -9 of the
# MASTER's lbd: all 30 list and retrieve again on their control
# connection, from the same real server.
# With lb2's standby sockets: made once the sessions are quiet, closed
# when they move again (a round before the event: a standby socket left
# from before it would be behind, and its session would die), made again
# once they are quiet, and every pair of the takeover taken from them.
drill_mirror_crash() {
	local r=0 what keys sb
	what=$(_mirror_what "kill -9 of lb1's lbd")
	MIRROR_STANDBY=1 _mirror_hold crash 2 || { _mirror_hold_stop crash; return 1; }
	_mirror_keys_figure lb2 "quiet sessions"
	_mirror_round crash 1 "the sessions moving again before the event" || r=1
	sb=$(rig_sval "$(rig_status lb2)" mirror.standby)
	rig_assert "lb2 closed the standby sockets of the sessions that moved (mirror.standby ${sb:-none} < $MIRROR_N)" \
		[ "${sb:-0}" -lt "$MIRROR_N" ] 2>/dev/null || r=1
	rig_wait 5000 _mirror_standby_at_least lb2 "$MIRROR_N"
	echo "  figure: lb2 made them again ${RIG_WAITED_MS:-?} ms later (mirror.standby $(rig_sval "$(rig_status lb2)" mirror.standby))"
	_mirror_keys_figure lb1 "before the event"
	_mirror_keys_figure lb2 "before the event"
	_mirror_kill 0 || r=1
	_mirror_round crash 2 "sessions across $what" || r=1
	_mirror_nokill || echo "  figure: $what: lb2 MASTER $MIRROR_TAKEOVER ms after it"
	_mirror_keys_figure lb2 "after the takeover"
	if ! _mirror_nokill; then
		read -ra keys <<<"$(_mirror_keys lb2)"
		rig_assert "lb2 rebuilt all $MIRROR_N pairs from standby sockets (mirror.rebuilt_standby ${keys[6]})" \
			[ "${keys[6]}" -ge "$MIRROR_N" ] 2>/dev/null || r=1
	fi
	_mirror_hold_stop crash
	_mirror_restore 0 || r=1
	return $r
}

# The same across a power-off of the MASTER: link down, then kill -9.
# Killed as soon as lb2 holds the pairs: standby sockets or not, as it comes.
drill_mirror_poweroff() { _mirror_idle poweroff 1 "power-off of lb1"; }

_mirror_idle() {
	local tag=$1 poweroff=$2 what r=0
	what=$(_mirror_what "$3")
	_mirror_hold "$tag" 1 || { _mirror_hold_stop "$tag"; return 1; }
	_mirror_keys_figure lb1 "before the event"
	_mirror_keys_figure lb2 "before the event"
	_mirror_kill "$poweroff" || r=1
	_mirror_round "$tag" 1 "sessions across $what" || r=1
	_mirror_nokill || echo "  figure: $what: lb2 MASTER $MIRROR_TAKEOVER ms after it"
	_mirror_keys_figure lb2 "after the takeover"
	_mirror_hold_stop "$tag"
	_mirror_restore "$poweroff" || r=1
	return $r
}

# A 64 MiB download with lftp (explicit FTPS, rate-limited) across kill
# -9 of the MASTER's lbd, then a 64 MiB upload the same way: each
# complete with big.bin's sha256 on ONE login.  The data connection (an
# unmirrored port) may be reset: the client goes on with REST on its
# surviving control connection.  The upload's client is sessions.py put,
# not lftp: lftp drops the control connection itself when an upload's
# data connection breaks (sessions.py, cmd_put), so its uploads always log
# in twice whatever the balancer does.
# The data ports are mirrored too (mirror_ports, reloaded on both nodes):
# a transfer then goes on over its own data connection. Left unmirrored
# (the default) the dead node resets the data connection, and the real
# server's 426 on the control connection can reach the dying node in
# the instant before its sockets close: the rebuilt control connection
# then misses it, is found stale and reset within a second (README).
_mirror_data_ports() { # on|off
	if [ "$1" = on ]; then
		RIG_MIRROR_PORTS='"21", "990", "1025-1052"'
	else
		RIG_MIRROR_PORTS=
	fi
	rig_lb_conf lb1 lb2
	rig_lb_conf lb2 lb1
	rig_lbctl lb1 reload >/dev/null && rig_lbctl lb2 reload >/dev/null
}

drill_mirror_lftp() {
	local r=0
	_mirror_data_ports on || { rig_fail "cannot mirror the data ports (reload)"; return 1; }
	_mirror_lftp
	r=$?
	_mirror_data_ports off || { rig_fail "cannot put mirror_ports back (reload)"; r=1; }
	return $r
}

_mirror_lftp() {
	local r=0
	_mirror_get || r=1
	if ! rig_ha_master_is lb1; then
		rig_fail "the pair is not back to lb1 MASTER after the download"
		return 1
	fi
	# REST+STOR into an existing file needs anon_other_write_enable=YES
	# (drill-sync.sh's sync_ftp_resume); put back afterwards.
	if sync_ftp_resume YES; then
		_mirror_put || r=1
	else
		rig_fail "could not switch vsftpd to resumable uploads"
		r=1
	fi
	rm -f "$RIG_DIR"/ftp1/root/upload/* "$RIG_DIR"/ftp2/root/upload/*
	sync_ftp_resume NO || r=1
	return $r
}

# MIRROR_RATE in bytes/s (lftp's suffixes: k and M are 1024-based).
_mirror_rate_bytes() {
	local v=$MIRROR_RATE
	case $v in
	*M) echo $(( ${v%M} * 1048576 )) ;;
	*k) echo $(( ${v%k} * 1024 )) ;;
	*) echo "$v" ;;
	esac
}

# Size of the largest of the files given (0 when none exists): how far a
# transfer has got.
_mirror_xfer_size() {
	local f s=0 n
	for f in "$@"; do
		n=$(stat -c %s "$f" 2>/dev/null || echo 0)
		((n > s)) && s=$n
	done
	echo "$s"
}

# Waits (20 s) until the transfer recorded as NAME has written 16 MiB to
# one of FILES, then the event: kill -9 of lb1's lbd, or under
# MIRROR_NOKILL=1 a reset of lb1's data connections only (ss -K on the
# passive ports: what a takeover does to an unmirrored data connection);
# then waits (60 s) until the transfer ends.  Sets MIRROR_AT (bytes at the
# event) and MIRROR_DONE_MS (from the event to the transfer's end).
# Usage: _mirror_xfer_event NAME WHAT FILE...
_mirror_xfer_event() {
	local name=$1 what=$2 i at=$((16 * 1024 * 1024)) r=0; shift 2
	MIRROR_AT=0
	for ((i = 0; i < 400; i++)); do
		MIRROR_AT=$(_mirror_xfer_size "$@")
		((MIRROR_AT >= at)) && break
		rig_alive "$name" || break
		sleep 0.05
	done
	rig_assert "$what under way: $((MIRROR_AT / 1048576)) MiB of $RIG_BIG_MIB at the event" [ "$MIRROR_AT" -ge "$at" ] ||
		{ rig_kill "$name"; return 1; }
	if _mirror_nokill; then
		MIRROR_T0=$(rig_ms)
		MIRROR_TAKEOVER=none
		rig_exec lb1 ss -K -tn state established '( sport >= :1025 and sport <= :1052 )' >/dev/null
	else
		_mirror_kill || r=1
	fi
	for ((i = 0; i < 600; i++)); do
		rig_alive "$name" || break
		sleep 0.1
	done
	MIRROR_DONE_MS=$(( $(rig_ms) - MIRROR_T0 ))
	rig_alive "$name" && { rig_kill "$name"; rig_fail "$what still running 60 s after the event"; r=1; }
	return $r
}

# What the transfers' figures call the event.
_mirror_xfer_what() {
	_mirror_nokill && echo "a reset of lb1's data connection only (ss -K; control run, MIRROR_NOKILL=1)" ||
		echo "kill -9 of lb1's lbd"
}

# lftp get of big.bin across the event.
_mirror_get() {
	local dbg=$RIG_DIR/mirror-get.lftp.log out=$RIG_DIR/mirror-get.log dl=$RIG_DIR/mirror-dl.bin
	local what users ctl data rests sha r=0
	what=$(_mirror_xfer_what)
	rm -f "$dbg" "$out" "$dl"
	# A data connection error (426, reset) makes lftp retry the RETR on the
	# same control connection with REST after 2 s; a new login would show
	# as a second USER.  net:timeout bounds every wait.
	rig_bg c1 mirror-get "$out" timeout 90 lftp -c "debug -t -o $dbg 5; \
set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; \
set ftp:passive-mode yes; set xfer:use-temp-file no; \
set net:max-retries 10; set net:persist-retries 10; set net:timeout 5; \
set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; \
set net:limit-rate $MIRROR_RATE:0; \
open -u anonymous, ftp://$RIG_VIP; get big.bin -o $dl; echo lftp-get-done"
	_mirror_xfer_event mirror-get "the lftp download" "$dl" || r=1
	users=$(grep -c -- '---> USER' "$dbg" 2>/dev/null)
	ctl=$(grep -c -- '---- Connecting to .* port 21$' "$dbg" 2>/dev/null)
	data=$(grep -c -- '---- Connecting data socket' "$dbg" 2>/dev/null)
	rests=$(grep -o -- '---> REST [0-9]*' "$dbg" 2>/dev/null | awk '$3 > 0 { printf "%s%d", (n++ ? "," : ""), $3 }')
	echo "  figure: lftp download across $what at $((MIRROR_AT / 1048576)) MiB: done ${MIRROR_DONE_MS} ms after it;" \
		"logins (USER) ${users:-0}, control connections ${ctl:-0}, data connections ${data:-0}," \
		"REST at [${rests:-none}]$(_mirror_nokill || echo "; lb2 MASTER $MIRROR_TAKEOVER ms after the event")"
	grep -E -- '---> (USER|REST|RETR|ABOR)|<--- (426|451|226|350|421|530)|Connecting to|Timeout|reconnect|Delaying|\*\*\*\*' "$dbg" 2>/dev/null |
		tail -n 12 | sed 's/^/    lftp: /' | cut -c1-130
	rig_assert "lftp reported the download done ($(tail -1 "$out" 2>/dev/null))" grep -q lftp-get-done "$out" || r=1
	sha=$(sha256sum "$dl" 2>/dev/null | cut -d' ' -f1)
	rig_assert "the download has big.bin's sha256 ($(_mirror_xfer_size "$dl") bytes)" [ "$sha" = "$RIG_BIG_SHA" ] || r=1
	rig_assert "ONE login across $what: ${users:-0} USER, ${ctl:-0} control connection(s)" \
		eval '[ "$users" = 1 ] && [ "$ctl" = 1 ]' || r=1
	_mirror_keys_figure lb2 "after the download"
	rm -f "$dl"
	_mirror_restore || r=1
	return $r
}

# sessions.py put of big.bin across the event (explicit FTPS).
_mirror_put() {
	local out=$RIG_DIR/mirror-put.log name=mirror-up.bin what l sha f up='' r=0
	local files=("$RIG_DIR/ftp1/root/upload/$name" "$RIG_DIR/ftp2/root/upload/$name")
	what=$(_mirror_xfer_what)
	rm -f "$out" "${files[@]}"
	rig_bg c1 mirror-put "$out" timeout 90 python3 "$RIG_SRC/sessions.py" --tls-max "$RIG_TLS_MAX" \
		put "$RIG_VIP" "$RIG_DIR/big.bin" "upload/$name" --rate "$(_mirror_rate_bytes)" --retries 5 --timeout 25
	_mirror_xfer_event mirror-put "the upload" "${files[@]}" || r=1
	l=$(tail -1 "$out")
	echo "  figure: upload across $what at $((MIRROR_AT / 1048576)) MiB: done ${MIRROR_DONE_MS} ms after it;" \
		"logins $(_mirror_n logins "$l") (it never logs in again), ok $(rig_jval ok <<<"$l")," \
		"REST at $(sed -n 's/.*"rests": \(\[[^]]*\]\).*/\1/p' <<<"$l")$(_mirror_nokill || echo "; lb2 MASTER $MIRROR_TAKEOVER ms after the event")"
	echo "    put: $(sed -n 's/.*"tries": \(\[.*\]\), "ok".*/\1/p' <<<"$l" | cut -c1-400)"
	[ -n "$(rig_jval error <<<"$l")" ] && echo "    put: error: $(rig_jval error <<<"$l")"
	for f in "${files[@]}"; do
		[ -f "$f" ] && up=$f
	done
	sha=$(sha256sum "$up" 2>/dev/null | cut -d' ' -f1)
	rig_assert "the client finished the upload on its one control connection (ok $(rig_jval ok <<<"$l"))" \
		[ "$(rig_jval ok <<<"$l")" = true ] || r=1
	rig_assert "the upload on ${up:+${up#"$RIG_DIR"/}} has big.bin's sha256 ($(_mirror_xfer_size "${files[@]}") bytes)" \
		[ "$sha" = "$RIG_BIG_SHA" ] || r=1
	_mirror_keys_figure lb2 "after the upload"
	_mirror_restore || r=1
	return $r
}

# 64 loops of short connections (connect, 220, hold 1 s, QUIT, 221) from
# c2 plus 30 idle sessions, across kill -9 of the MASTER's lbd: every
# attempt in flight or begun after the kill ends, survived or reset,
# without any network wait past 2 s; the idle sessions survive.
drill_mirror_load() {
	local r=0 src mark=$RIG_DIR/mirror-load.mark out=$RIG_DIR/mirror-load.log l what i
	what=$(_mirror_what "kill -9 of lb1's lbd")
	src=$(_mirror_src c2 200 207) || { rig_fail "cannot add c2's source addresses"; return 1; }
	rm -f "$mark" "$out" "$RIG_DIR/mirror-load.ready"
	_mirror_hold load 1 || { _mirror_hold_stop load; return 1; }
	rig_bg c2 mirror-load "$out" timeout 40 python3 "$RIG_SRC/sessions.py" load "$RIG_VIP" \
		--loops "$MIRROR_LOOPS" --seconds 9 --mark "$mark" --source "$src" \
		--ready "$RIG_DIR/mirror-load.ready"
	rig_wait 10000 test -s "$RIG_DIR/mirror-load.ready" ||
		{ rig_fail "the load did not start"; _mirror_hold_stop load; rig_kill mirror-load; return 1; }
	sleep 3	# the loops are staggered over 1.5 s: all running before the event
	_mirror_keys_figure lb1 "under load, before the event"
	_mirror_kill || r=1
	echo "$MIRROR_T0" >"$mark"
	_mirror_round load 1 "idle sessions across $what under load" || r=1
	for ((i = 0; i < 300; i++)); do
		rig_alive mirror-load || break
		sleep 0.1
	done
	rig_alive mirror-load && { rig_kill mirror-load; rig_fail "the load still ran 30 s after the event"; r=1; }
	l=$(grep '"mode": "load"' "$out" | tail -1)
	echo "  figure: load across $what: $(rig_jval attempts <<<"$l") attempts in $MIRROR_LOOPS loops," \
		"$(rig_jval ok <<<"$l") ok; before it $(rig_jval before_mark <<<"$l") ($(rig_jval failed_before_mark <<<"$l") failed);" \
		"in flight at it $(rig_jval in_flight_at_mark <<<"$l") ($(rig_jval in_flight_ok <<<"$l") ok, the last ended" \
		"+$(rig_jval last_end_after_mark_ms <<<"$l") ms); begun after $(rig_jval begun_after_mark <<<"$l")" \
		"($(rig_jval begun_after_ok <<<"$l") ok)"
	echo "  figure: load: outcomes after the event $(sed -n 's/.*"after_outcomes": \({[^}]*}\).*/\1/p' <<<"$l");" \
		"longest attempt $(rig_jval longest_after_mark_ms <<<"$l") ms (1000 ms of it the hold), longest network wait" \
		"$(rig_jval longest_wait_after_mark_ms <<<"$l") ms; hung past 2 s: $(rig_jval hung_count <<<"$l")" \
		"$(sed -n 's/.*"hung": \(\[[^]]*\]\).*/\1/p' <<<"$l" | cut -c1-300)"
	rig_assert "load: every attempt after the event ended, survived or reset, without a wait past 2 s ($(rig_jval hung_count <<<"$l") hung)" \
		eval '[ -n "$l" ] && [ "$(rig_jval hung_count <<<"$l")" = 0 ] && [ "$(_mirror_n in_flight_at_mark "$l")" -gt 0 ]' || r=1
	rig_assert "load: no attempt failed before the event ($(rig_jval failed_before_mark <<<"$l")): the load itself is sound" \
		[ "$(rig_jval failed_before_mark <<<"$l")" = 0 ] || r=1
	_mirror_keys_figure lb2 "after the takeover"
	_mirror_hold_stop load
	_mirror_restore || r=1
	return $r
}

# Sessions that survived a crash survive the old MASTER's return: lb1
# restarted as systemd would, preempts (a planned handover: lb2 drains and
# lb1 steers their packets to it); phase 2 again on every session once lb1
# is MASTER.  Control run: a planned `lbctl failover` lb1 -> lb2 instead.
drill_mirror_return() {
	local r=0 t0 what st
	what=$(_mirror_what "kill -9 of lb1's lbd")
	_mirror_hold return 2 || { _mirror_hold_stop return; return 1; }
	_mirror_kill || r=1
	_mirror_round return 1 "sessions across $what" || r=1
	_mirror_keys_figure lb2 "after the takeover"
	t0=$(rig_ms)
	if _mirror_nokill; then
		what="planned lbctl failover lb1 -> lb2 (control run)"
		rig_lbctl lb1 failover >/dev/null 2>&1
		rig_wait 10000 rig_ha_master_is lb2
		rig_assert "$what: lb2 MASTER ($(rig_ha_master 2>/dev/null))" rig_ha_master_is lb2 || r=1
	else
		what="lb1's return and preemption"
		rig_lb_restart_systemd lb1 "$MIRROR_T0"
		rig_wait 15000 rig_ha_master_is lb1
		echo "  figure: lb1 restarted $((RIG_LB_STARTED_MS - MIRROR_T0)) ms after the kill, MASTER again" \
			"$(_ha_ev lb1 MASTER "$RIG_LB_STARTED_MS") ms after its start"
		rig_assert "lb1 MASTER again by preemption ($(rig_ha_master 2>/dev/null))" rig_ha_master_is lb1 || r=1
	fi
	st="lb1 $(_ha_steer_state lb1), lb2 $(_ha_steer_state lb2)"
	echo "  figure: after $what: draining/forwarding $st"
	_mirror_round return 2 "the same sessions after $what" || r=1
	_mirror_hold_stop return
	# The held sessions are gone (QUIT): the drain ends, the pair is plain again.
	rig_wait 10000 eval '[ "$(_ha_steer_state lb1) $(_ha_steer_state lb2)" = "false false false false" ]'
	echo "  figure: steering ended $(( $(rig_ms) - t0 )) ms after $what (now lb1 $(_ha_steer_state lb1), lb2 $(_ha_steer_state lb2))"
	return $r
}
