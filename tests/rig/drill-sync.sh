# drill-sync.sh - the sticky replication drills: both nodes'
# tables converge; a MASTER crash loses no sticky client (sessions and an
# interrupted 64 MiB upload resume on the same real server); a restarted
# node takes the whole table before it preempts; clear, flush and expiry
# reach both nodes; a partition's two tables merge by the documented rule;
# forged, truncated and replayed sync frames change nothing.  They run in
# the pair rig (RIG_LB_NODES="lb1 lb2", lb1 priority 150, lb2 100) after
# ha_reset (drill-ha.sh): lb1 MASTER, both real servers up, tables empty.
#
# Source addresses: aliases added here to c2 (.110-.174, .184-.186,
# .191-.196) and c1 (.180-.182, .190), besides c1 (.100) and c2 (.101)
# themselves.  Helpers are sync_*.

SYNC_PAR=${SYNC_PAR:-8}			# sessions run in parallel
SYNC_TOOL=				# synctool.py, written into $RIG_DIR on first use

# ---------------------------------------------------------------- helpers

# Prints the rig addresses .FIRST to .LAST, one per line, after making
# sure each one sits on client NODE's eth0 (idempotent).
sync_addrs() {
	local node=$1 first=$2 last=$3 i ns
	ns=$(rig_ns "$node")
	for ((i = first; i <= last; i++)); do
		ip -n "$ns" addr replace "$RIG_NET.$i/24" dev eth0 2>/dev/null ||
			{ echo "sync_addrs: cannot add $RIG_NET.$i to $node" >&2; return 1; }
		echo "$RIG_NET.$i"
	done
}

# One FTPS session (RETR server.txt) from source address IP of client
# NODE, explicit or implicit; prints the server name, or FAILED.
sync_session() {
	local node=$1 mode=$2 ip=$3 s
	s=$(rig_curl "$node" "$mode" "$RIG_VIP" server.txt --interface "$ip" --max-time 15 2>/dev/null)
	rig_is_server "$s" && echo "$s" || echo FAILED
}

# One session from each address IP... of client NODE, SYNC_PAR at a time;
# prints "IP SERVER" per address in the order given.
# Usage: sync_sessions NODE explicit|implicit IP...
sync_sessions() {
	local node=$1 mode=$2 ip n=0 dir; shift 2
	dir=$(mktemp -d "$RIG_DIR/sess.XXXXXX") || return 1
	for ip in "$@"; do
		( echo "$ip $(sync_session "$node" "$mode" "$ip")" >"$dir/$ip" ) &
		n=$((n + 1))
		((n % SYNC_PAR == 0)) && wait
	done
	wait
	for ip in "$@"; do
		cat "$dir/$ip" 2>/dev/null || echo "$ip FAILED"
	done
	rm -rf "$dir"
}

# sync_sessions again for the addresses whose session FAILED in OUT (a
# session cut by a role change); prints OUT with those lines replaced.
# Usage: sync_retry NODE MODE "$out"
sync_retry() {
	local node=$1 mode=$2 out=$3 failed again
	failed=$(awk '$2 == "FAILED" { print $1 }' <<<"$out")
	[ -n "$failed" ] || { echo "$out"; return 0; }
	# shellcheck disable=SC2086
	again=$(sync_sessions "$node" "$mode" $failed)
	awk 'NR == FNR { a[$1] = $2; next } { print $1, ($1 in a ? a[$1] : $2) }' \
		<(echo "$again") <(echo "$out")
}

# Number of FAILED sessions in a sync_sessions output.
sync_nfailed() { grep -c ' FAILED$' <<<"$1"; }

# NODE's sticky table, "service client backend expires_in_s" per entry,
# sorted by client; fails when lbd does not answer or the list is cut.
sync_table() {
	local j
	j=$(rig_lbctl "$1" --json sticky list 2>/dev/null) || return 1
	[ "$(rig_jval truncated <<<"$j" | head -1)" != true ] || return 1
	rig_jsplit <<<"$j" | awk '
	function f(k,   m) {
		if (!match($0, "\"" k "\"[ \t]*:[ \t]*(\"[^\"]*\"|-?[0-9]+)"))
			return "-"
		m = substr($0, RSTART, RLENGTH)
		sub(/^"[^"]*"[ \t]*:[ \t]*/, "", m)
		gsub(/"/, "", m)
		return m
	}
	/"client"/ { print f("service"), f("client"), f("backend"), f("expires_in_s") }' |
		sort -k2,2 -k1,1
}

# "service client backend" of a sync_table output (no expiry).
sync_pairs() { cut -d' ' -f1-3 <<<"$1" | grep .; }

# Number of entries in a sync_table output.
sync_n() { grep -c . <<<"$1"; }

# Backend of client IP in a sync_table output ("" when none).
sync_backend_in() { awk -v c="$2" '$2 == c { print $3; exit }' <<<"$1"; }

# True when lb1's and lb2's tables hold the same (service, client,
# backend) entries and expiries at most TOL s apart; sets SYNC_T1, SYNC_T2
# (the tables) and SYNC_EXP_DIFF (largest expiry difference, s).
sync_same() {
	local tol=${1:-3}
	SYNC_T1=$(sync_table lb1) || return 1
	SYNC_T2=$(sync_table lb2) || return 1
	[ "$(sync_pairs "$SYNC_T1")" = "$(sync_pairs "$SYNC_T2")" ] || return 1
	SYNC_EXP_DIFF=$(paste -d' ' <(echo "$SYNC_T1") <(echo "$SYNC_T2") |
		awk '{ d = $4 - $8; if (d < 0) d = -d; if (d > m) m = d } END { print m + 0 }')
	[ "$SYNC_EXP_DIFF" -le "$tol" ]
}

# True when lb1's and lb2's tables both hold exactly N entries and agree.
sync_same_n() { sync_same "${2:-3}" && [ "$(sync_n "$SYNC_T1")" = "$1" ]; }

# True when NODE's table is empty.
sync_empty() { local t; t=$(sync_table "$1") && [ -z "$t" ]; }

# True when both tables are empty (ha_reset flushed lb1: the Clear replicates).
sync_both_empty() { sync_empty lb1 && sync_empty lb2; }

# Prints "missing wrong" counts: entries of table WANT (sync_table output)
# absent from table GOT, and present there with another backend.
sync_lost() {
	awk 'NR == FNR { want[$1 " " $2] = $3; next }
	{ got[$1 " " $2] = $3 }
	END {
		for (k in want) {
			if (!(k in got)) miss++
			else if (got[k] != want[k]) wrong++
		}
		print miss + 0, wrong + 0
	}' <(echo "$1" | grep .) <(echo "$2" | grep .)
}

# Prints KEY of NODE's flattened `lbctl --json status` ("" when absent).
sync_st() {
	local -A st
	rig_status_into "$1" st || return 1
	echo "${st[$2]}"
}

# True when NODE's replication state is synced.
sync_synced() { [ "$(sync_st "$1" sync.state)" = synced ]; }

sync_both_synced() { sync_synced lb1 && sync_synced lb2; }

# True when the pair is settled with lb1 MASTER, both synced, and both
# real servers up on both nodes.
sync_pair_ok() {
	rig_ha_master_is lb1 && sync_both_synced && rig_backends_up lb1 lb2
}

# Writes both nodes' configs (rig_lb_conf), then applies each sed
# expression given to both: the drills' config variants.
sync_pair_conf() {
	local e n
	rig_lb_conf lb1 lb2
	rig_lb_conf lb2 lb1
	for e in "$@"; do
		for n in lb1 lb2; do
			sed -i -e "$e" "$RIG_DIR/$n.conf" || return 1
		done
	done
}

# Restarts the pair with the configs on disk (lb2 and lb1 stopped
# gracefully, lb1 started, then lb2) and waits (15 s) until sync_pair_ok.
sync_restart_pair() {
	rig_lb_stop lb2
	rig_lb_stop lb1
	( rig_lb_start lb1 && rig_lb_wait_ready lb1 ) || return 1
	( rig_lb_start lb2 && rig_lb_wait_ready lb2 novip ) || return 1
	rig_wait 15000 sync_pair_ok || { RIG_WHY=1 rig_ha_master >/dev/null; return 1; }
}

# Puts the rig's own configs back and restarts the pair, when the configs
# on disk differ from them (a drill used a variant).
sync_restore_pair() {
	local a b
	a=$(cat "$RIG_DIR/lb1.conf" "$RIG_DIR/lb2.conf")
	sync_pair_conf
	b=$(cat "$RIG_DIR/lb1.conf" "$RIG_DIR/lb2.conf")
	[ "$a" = "$b" ] && rig_alive lb1-lbd && rig_alive lb2-lbd && return 0
	rig_log "  restoring the rig's configs: restarting the pair"
	sync_restart_pair
}

# Waits until both tables are empty: the drill's start state.
sync_start() {
	rig_wait 3000 sync_both_empty ||
		{ rig_fail "tables not empty at the start: lb1 $(sync_n "$(sync_table lb1)"), lb2 $(sync_n "$(sync_table lb2)")"; return 1; }
}

# MAC address of NODE's eth0.
sync_mac() {
	ip -n "$(rig_ns "$1")" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# Static neighbour entry for the VIP in client NODE pointing at lb node
# LB's eth0 (pins the client to one side of a split brain), or "del".
sync_pin() {
	local node=$1 lb=$2 ns
	ns=$(rig_ns "$node")
	if [ "$lb" = del ]; then
		ip -n "$ns" neigh del "$RIG_VIP" dev eth0 2>/dev/null
		return 0
	fi
	ip -n "$ns" neigh replace "$RIG_VIP" lladdr "$(sync_mac "$lb")" dev eth0 nud permanent
}

# Blackholes lb1 <-> lb2 (heartbeat and sync), or removes it: add|del.
sync_partition() {
	ip -n "$(rig_ns lb1)" route "$1" blackhole "${RIG_ADDR[lb2]}/32" 2>/dev/null
	ip -n "$(rig_ns lb2)" route "$1" blackhole "${RIG_ADDR[lb1]}/32" 2>/dev/null
	[ "$1" = del ] || { ip -n "$(rig_ns lb1)" route show | grep -q blackhole &&
		ip -n "$(rig_ns lb2)" route show | grep -q blackhole; }
}

# Counts of each backend in a sync_table output, for figures.
sync_split() { awk '{ n[$3]++ } END { for (b in n) printf "%s %d  ", b, n[b] }' <<<"$1"; }

# "ms ms" between two stamped log lines' times (HH:MM:SS.micro).
sync_stamp_ms() {
	local t=$1
	[[ $t =~ ^([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3}) ]] || { echo -1; return; }
	echo $(( ((10#${BASH_REMATCH[1]} * 60 + 10#${BASH_REMATCH[2]}) * 60 + 10#${BASH_REMATCH[3]}) * 1000 + 10#${BASH_REMATCH[4]} ))
}

# ---------------------------------------------------------------- drills

# 40 source addresses each open a session through lb1: lb2's table
# becomes the same (clients, backends, expiries within 2 s).
drill_sync_converge() {
	local ips out t0 conv t1 t2 st
	sync_start || return 1
	ips=$(sync_addrs c2 110 149) || return 1
	t0=$(rig_ms)
	# shellcheck disable=SC2086
	out=$(sync_sessions c2 explicit $ips)
	local el=$(( $(rig_ms) - t0 ))
	rig_assert "40 sessions from .110-.149 through the VIP ($el ms, $(sync_nfailed "$out") failed)" \
		[ "$(sync_nfailed "$out")" = 0 ] || return 1
	t0=$(rig_ms)
	rig_wait 5000 sync_same_n 40 5
	conv=$RIG_WAITED_MS
	t1=$SYNC_T1 t2=$SYNC_T2
	echo "  figure: tables identical ${conv} ms after the last session ended (polled every 50 ms)"
	rig_assert "lb1 holds 40 entries (got $(sync_n "$t1")), lb2 the same 40 client->backend pairs (got $(sync_n "$t2"))" \
		eval '[ "$(sync_n "$t1")" = 40 ] && [ "$(sync_pairs "$t1")" = "$(sync_pairs "$t2")" ]' || return 1
	# A session's later connections refresh lb1's entry; a refresh is only
	# replicated once it moves the expiry by 1% of the timeout (18 s here).
	rig_assert "expiries within 5 s of each other (largest difference ${SYNC_EXP_DIFF:-?} s)" \
		[ "${SYNC_EXP_DIFF:-99}" -le 5 ] || return 1
	local bad
	bad=$(awk '{ print $2, $3 }' <<<"$t1" | sort | join - <(sort <<<"$out") | awk '$2 != $3' | wc -l)
	rig_assert "each entry names the server its session reached ($bad differ)" [ "$bad" = 0 ] || return 1
	st=$(rig_status lb1)
	echo "  figure: split $(sync_split "$t1"); lb1 entries_sent $(rig_sval "$st" sync.entries_sent)," \
		"lag p50 $(rig_sval "$st" sync.lag_p50_ms) ms p99 $(rig_sval "$st" sync.lag_p99_ms) ms;" \
		"lb2 entries_received $(sync_st lb2 sync.entries_received)"
	return 0
}

# kill -9 of the MASTER: lb2's table at takeover holds all 40 entries and
# every client's next explicit and implicit session reaches its server;
# lb1 is restarted the way systemd would (1 s after its death) while the
# sessions run, so later sessions go through lb1 again after its rejoin.
drill_sync_crash() {
	local ips out before t0 atk lost miss wrong ex im r=0 m ex0 im0 restarter
	sync_start || return 1
	ips=$(sync_addrs c2 110 149) || return 1
	# shellcheck disable=SC2086
	out=$(sync_sessions c2 explicit $ips)
	rig_assert "40 sessions through lb1 ($(sync_nfailed "$out") failed)" [ "$(sync_nfailed "$out")" = 0 ] || return 1
	rig_assert "both tables hold the 40 entries" rig_wait 5000 sync_same_n 40 5 || return 1
	before=$SYNC_T1
	rm -f "$RIG_DIR/sync-restarted"
	t0=$(rig_ms)
	kill -9 "$(rig_lb_pid lb1)"
	# systemd: Restart=always, RestartSec=1: the same command 1 s later.
	( rig_lb_restart_systemd lb1 "$t0" && echo "$RIG_LB_STARTED_MS" >"$RIG_DIR/sync-restarted" ) &
	restarter=$!
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	echo "  figure: kill -9 of lb1: lb2 MASTER after $RIG_WAITED_MS ms (polled)"
	rig_assert "lb2 took over (role $(rig_role lb2))" rig_role_is lb2 MASTER || r=1
	atk=$(sync_table lb2)
	read -r miss wrong <<<"$(sync_lost "$before" "$atk")"
	lost=$(( miss + wrong ))
	echo "  figure: sticky entries lost: $lost (lb2's table at takeover: $(sync_n "$atk") entries, $miss missing, $wrong with another backend)"
	rig_assert "sticky entries lost: 0 (got $lost)" [ "$lost" = 0 ] || r=1
	# shellcheck disable=SC2086
	ex0=$(sync_sessions c2 explicit $ips)
	# shellcheck disable=SC2086
	im0=$(sync_sessions c2 implicit $ips)
	wait $restarter
	echo "  lb1 restarted $(( $(cat "$RIG_DIR/sync-restarted" 2>/dev/null || echo "$t0") - t0 )) ms after the kill;" \
		"lb1 MASTER again $(( $(rig_role_event_ms lb1 MASTER "$t0" 2>/dev/null || echo "$t0") - t0 )) ms after the kill (its log)"
	# A session in flight when lb1 took the VIP back is cut: one retry.
	ex=$(sync_retry c2 explicit "$ex0")
	im=$(sync_retry c2 implicit "$im0")
	local exbad imbad
	exbad=$(join <(awk '{ print $2, $3 }' <<<"$before" | sort) <(sort <<<"$ex") | awk '$2 != $3' | wc -l)
	imbad=$(join <(awk '{ print $2, $3 }' <<<"$before" | sort) <(sort <<<"$im") | awk '$2 != $3' | wc -l)
	echo "  figure: next sessions on another server than before: explicit $exbad/40, implicit $imbad/40" \
		"(failed and retried once, as the preemption back to lb1 cuts sessions in flight: $(sync_nfailed "$ex0") explicit, $(sync_nfailed "$im0") implicit;" \
		"failed after the retry: $(sync_nfailed "$ex"), $(sync_nfailed "$im"))"
	rig_assert "every client's next explicit session on its server ($exbad moved or failed)" [ "$exbad" = 0 ] || r=1
	rig_assert "every client's next implicit session on its server ($imbad moved or failed)" [ "$imbad" = 0 ] || r=1
	rig_wait 15000 sync_pair_ok
	m=$(rig_ha_master 2>/dev/null)
	rig_assert "the pair settled again with lb1 MASTER, both synced (MASTER ${m:-none})" \
		sync_pair_ok || r=1
	rig_assert "tables identical after the rejoin (40 entries)" rig_wait 5000 sync_same_n 40 20 || r=1
	return $r
}

# Lets anonymous users overwrite (and so resume) uploads on both real
# servers, or not: YES|NO.  The rig's vsftpd has anon_other_write_enable=NO,
# under which vsftpd creates anonymous uploads exclusively and refuses a
# REST+STOR into an existing file.
sync_ftp_resume() {
	local v=$1 n p
	for n in ftp1 ftp2; do
		for p in 21 990; do
			sed -i "s/^anon_other_write_enable=.*/anon_other_write_enable=$v/" \
				"$RIG_DIR/$n/vsftpd-$p.conf" || return 1
		done
		rig_ftp_stop "$n"
		rig_ftp_start "$n"
	done
	rig_wait 5000 sync_pair_ok
}

# lftp uploads 64 MiB (rate-limited) through the VIP; the MASTER's lbd is
# killed mid-transfer; lftp reconnects through lb2 and resumes with REST;
# the file on the sticky server is complete and the other holds nothing.
drill_sync_upload() {
	local r=0
	sync_start || return 1
	sync_ftp_resume YES || { rig_fail "could not switch vsftpd to resumable uploads"; r=1; }
	[ $r = 0 ] && { _sync_upload || r=1; }
	rm -f "$RIG_DIR"/ftp1/root/upload/* "$RIG_DIR"/ftp2/root/upload/*
	sync_ftp_resume NO || r=1
	return $r
}

_sync_upload() {
	local c1ip s o sd od name=sync-resume.bin dbg=$RIG_DIR/sync-lftp.debug t0 size=0 i r=0
	local rate=${SYNC_UPLOAD_RATE:-16M} kill_at=$((16 * 1024 * 1024))
	c1ip=$(rig_client_ip 1)
	rm -f "$RIG_DIR"/ftp1/root/upload/* "$RIG_DIR"/ftp2/root/upload/* "$dbg"
	s=$(sync_session c1 explicit "$c1ip")
	rig_assert "c1's sticky server: $s" rig_is_server "$s" || return 1
	[ "$s" = FTP_SVR1 ] && o=FTP_SVR2 || o=FTP_SVR1
	sd=$RIG_DIR/${RIG_FTP_NODE[$s]}/root/upload
	od=$RIG_DIR/${RIG_FTP_NODE[$o]}/root/upload
	rig_assert "lb2 knows c1 -> $s" rig_wait 3000 eval '[ "$(rig_sticky_of lb2 "$c1ip")" = "$s" ]' || return 1
	rm -f "$RIG_DIR/sync-lftp.out"
	rig_bg c1 sync-lftp "$RIG_DIR/sync-lftp.out" timeout 120 lftp -c "debug -t -o $dbg 5; \
set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; \
set ftp:passive-mode yes; set ftp:rest-stor yes; set xfer:use-temp-file no; \
set ftp:use-site-utime no; set ftp:use-site-utime2 no; \
set net:max-retries 10; set net:persist-retries 10; set net:timeout 5; \
set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; \
set net:limit-rate 0:$rate; \
open -u anonymous, ftp://$RIG_VIP; put -c $RIG_DIR/big.bin -o upload/$name; echo lftp-put-done"
	for ((i = 0; i < 600; i++)); do
		size=$(stat -c %s "$sd/$name" 2>/dev/null || echo 0)
		((size >= kill_at)) && break
		rig_alive sync-lftp || break
		sleep 0.05
	done
	rig_assert "upload under way on $s: $((size / 1048576)) MiB of ${RIG_BIG_MIB} written" \
		[ "$size" -ge "$kill_at" ] || { rig_kill sync-lftp; return 1; }
	t0=$(rig_ms)
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 3000 rig_role_is lb2 MASTER
	echo "  figure: kill -9 of lb1 at $((size / 1048576)) MiB uploaded; lb2 MASTER after $RIG_WAITED_MS ms"
	# 64 MiB at the rate limit plus a reconnect or two: bounded at 90 s.
	for ((i = 0; i < 900; i++)); do
		rig_alive sync-lftp || break
		sleep 0.1
	done
	local done_ms=$(( $(rig_ms) - t0 ))
	rig_alive sync-lftp && { rig_kill sync-lftp; rig_fail "lftp still running 90 s after the crash"; r=1; }
	local rests sha osz
	rests=$(grep -o 'REST [0-9]*' "$dbg" 2>/dev/null | awk '$2 > 0 { printf "%s%d", (n++ ? "," : ""), $2 }')
	echo "  figure: lftp finished ${done_ms} ms after the crash; reconnects $(( $(grep -c 'Connecting to' "$dbg" 2>/dev/null) - 1 ))," \
		"resumed with REST at [${rests:-none}] bytes"
	grep -E -- '---> (REST|STOR|APPE|SIZE|SITE|MFMT|MDTM)|<--- (350|226|213|150|[45][0-9][0-9])|Connecting to|eof|Delaying' "$dbg" 2>/dev/null |
		tail -n 20 | sed 's/^/    lftp: /' | cut -c1-140
	rig_assert "lftp reported the put done ($(tail -1 "$RIG_DIR/sync-lftp.out" 2>/dev/null))" \
		grep -q lftp-put-done "$RIG_DIR/sync-lftp.out" || r=1
	rig_assert "lftp resumed with a REST > 0 (REST at ${rests:-none})" [ -n "$rests" ] || r=1
	sha=$(sha256sum "$sd/$name" 2>/dev/null | cut -d' ' -f1)
	rig_assert "the file on $s has the right sha256 ($(stat -c %s "$sd/$name" 2>/dev/null) bytes)" \
		[ "$sha" = "$RIG_BIG_SHA" ] || r=1
	osz=$(find "$od" -mindepth 1 -printf "%f " 2>/dev/null)
	rig_assert "$o holds no part of it (upload/ holds [${osz}])" [ -z "$osz" ] || r=1
	rig_lb_restart_systemd lb1 "$t0"
	rig_assert "lb1 restarted; the pair settled with lb1 MASTER" rig_wait 15000 sync_pair_ok || r=1
	return $r
}

# kill -9 of lb1, new clients through lb2, lb1 restarted: at the moment
# lb1 becomes MASTER again its table already holds every entry of lb2's,
# and its log shows the bulk applied before the role change.
drill_sync_rejoin() {
	local ips1 ips2 out t0 t2 n0 i polls=0 role ents mst_ms='' mst_ents='' mst_bulk='' lb1t r=0 start now
	local -A st
	sync_start || return 1
	ips1=$(sync_addrs c2 150 159) || return 1
	ips2=$(sync_addrs c2 160 169) || return 1
	# shellcheck disable=SC2086
	out=$(sync_sessions c2 explicit $ips1)
	rig_assert "10 clients through lb1 ($(sync_nfailed "$out") failed), replicated" \
		eval '[ "$(sync_nfailed "$out")" = 0 ] && rig_wait 5000 sync_same_n 10 5' || return 1
	t0=$(rig_ms)
	kill -9 "$(rig_lb_pid lb1)"
	rig_wait_fast 3000 rig_role_is lb2 MASTER ||
		{ rig_fail "lb2 did not take over"; rig_lb_restart_systemd lb1 "$t0"; return 1; }
	# shellcheck disable=SC2086
	out=$(sync_sessions c2 explicit $ips2)
	t2=$(sync_table lb2)
	rig_assert "10 new clients through lb2 while lb1 is down ($(sync_nfailed "$out") failed): lb2 holds $(sync_n "$t2") entries" \
		eval '[ "$(sync_nfailed "$out")" = 0 ] && [ "$(sync_n "$t2")" = 20 ]' || r=1
	rig_kill lb1-lbd KILL
	n0=$(wc -l <"$RIG_DIR/lb1.log")
	now=$(rig_ms)
	((now - t0 < RIG_RESTART_SEC * 1000)) &&
		sleep "$(awk -v m=$((t0 + RIG_RESTART_SEC * 1000 - now)) 'BEGIN { printf "%.3f", m / 1000 }')"
	# Started in the background so the 20 ms polls begin at once.
	( rig_lb_start lb1 ) &
	local starter=$!
	start=$(rig_ms)
	for ((i = 0; i < 1000; i++)); do
		now=$(rig_ms)
		((now - start >= 20000)) && break
		if rig_status_into lb1 st; then
			polls=$((polls + 1))
			role=${st[role]} ents=${st[sync.entries]}
			if [ "$role" = MASTER ]; then
				mst_ms=$((now - start)) mst_ents=$ents mst_bulk=${st[sync.bulk.done]}
				break
			fi
		fi
		sleep 0.02
	done
	lb1t=$(sync_table lb1)
	wait $starter
	local miss wrong
	read -r miss wrong <<<"$(sync_lost "$t2" "$lb1t")"
	echo "  figure: lb1 restarted $((start - t0)) ms after the kill; MASTER at +${mst_ms:-never} ms (${polls} status polls," \
		"20 ms apart); at that poll: sync.entries ${mst_ents:-?}, bulk.done ${mst_bulk:-?}; lb2 held $(sync_n "$t2")"
	rig_assert "lb1 became MASTER again (preempt)" [ -n "$mst_ms" ] || r=1
	rig_assert "when lb1 was first seen MASTER its table held all $(sync_n "$t2") of lb2's entries (status: ${mst_ents:-?})" \
		eval '[ -n "$mst_ents" ] && [ "$mst_ents" -ge "$(sync_n "$t2")" ]' || r=1
	rig_assert "right after, lb1's table has every lb2 entry with the same backend ($miss missing, $wrong differ)" \
		[ "$miss/$wrong" = 0/0 ] || r=1
	# The log, in arrival order: the bulk's "applied" line before the role change.
	local log bl rl bt rt
	log=$(tail -n +"$((n0 + 1))" "$RIG_DIR/lb1.log")
	bl=$(grep -n 'sync: bulk of [0-9]* entries from lb2 applied' <<<"$log" | head -1)
	rl=$(grep -n 'lbd: role [A-Z]* -> MASTER' <<<"$log" | head -1)
	bt=$(sync_stamp_ms "${bl#*:}") rt=$(sync_stamp_ms "${rl#*:}")
	echo "  figure: lb1's log: '$(cut -d' ' -f3- <<<"${bl#*:}")' then '$(cut -d' ' -f3-5 <<<"${rl#*:}")' $((rt - bt)) ms later"
	rig_assert "lb1's log shows the bulk from lb2 applied (line ${bl%%:*}) before it became MASTER (line ${rl%%:*})" \
		eval '[ -n "$bl" ] && [ -n "$rl" ] && [ "${bl%%:*}" -lt "${rl%%:*}" ]' || r=1
	rig_assert "the bulk carried the 20 entries ($(grep -o 'bulk of [0-9]*' <<<"$bl"))" \
		eval '[ "$(grep -o "bulk of [0-9]*" <<<"$bl" | cut -d" " -f3)" -ge 20 ]' || r=1
	rig_assert "pair settled, tables identical afterwards" \
		eval 'rig_wait 15000 sync_pair_ok && rig_wait 5000 sync_same_n 20 3' || r=1
	return $r
}

# sticky clear IP and flush on either node reach both; with a 5 s
# sticky_timeout_s an entry expires on both nodes.
drill_sync_clear() {
	local r=0
	sync_start || return 1
	_sync_clear || r=1
	sync_restore_pair || { rig_fail "could not restore the pair's configs"; r=1; }
	return $r
}

_sync_clear() {
	local ips out a b c t0 r=0 g1 g2 e
	ips=$(sync_addrs c2 170 174) || return 1
	read -r a b c _ <<<"$(xargs <<<"$ips")"
	# shellcheck disable=SC2046
	out=$(sync_sessions c2 explicit $(head -4 <<<"$ips"))
	rig_assert "4 clients, replicated ($(sync_nfailed "$out") failed)" \
		eval '[ "$(sync_nfailed "$out")" = 0 ] && rig_wait 5000 sync_same_n 4 5' || return 1
	rig_lbctl lb2 sticky clear "$a" >/dev/null
	t0=$(rig_ms)
	rig_wait 3000 eval '[ -z "$(rig_sticky_of lb1 "$a")" ] && [ -z "$(rig_sticky_of lb2 "$a")" ]'
	echo "  figure: sticky clear $a on the BACKUP lb2: gone from both after $RIG_WAITED_MS ms"
	rig_assert "clear on lb2 removed $a from both (lb1 '$(rig_sticky_of lb1 "$a")', lb2 '$(rig_sticky_of lb2 "$a")')" \
		eval '[ -z "$(rig_sticky_of lb1 "$a")" ] && [ -z "$(rig_sticky_of lb2 "$a")" ]' || r=1
	rig_lbctl lb1 sticky clear "$b" >/dev/null
	rig_wait 3000 eval '[ -z "$(rig_sticky_of lb1 "$b")" ] && [ -z "$(rig_sticky_of lb2 "$b")" ]'
	echo "  figure: sticky clear $b on the MASTER lb1: gone from both after $RIG_WAITED_MS ms"
	rig_assert "clear on lb1 removed $b from both" \
		eval '[ -z "$(rig_sticky_of lb1 "$b")" ] && [ -z "$(rig_sticky_of lb2 "$b")" ]' || r=1
	rig_assert "the other 2 entries stay on both" sync_same_n 2 5 || r=1
	out=$(sync_session c2 explicit "$a")
	rig_assert "a new session from the cleared $a makes a new entry on both ($out; the tombstone is older)" \
		rig_wait 3000 eval '[ "$(rig_sticky_of lb1 "$a")" = "$out" ] && [ "$(rig_sticky_of lb2 "$a")" = "$out" ]' || r=1
	rig_lbctl lb2 sticky flush >/dev/null
	rig_wait 3000 sync_both_empty
	echo "  figure: sticky flush on lb2: both tables empty after $RIG_WAITED_MS ms"
	rig_assert "flush on lb2 emptied both (lb1 $(sync_n "$(sync_table lb1)"), lb2 $(sync_n "$(sync_table lb2)"))" \
		sync_both_empty || r=1
	out=$(sync_session c2 explicit "$c")
	rig_assert "flush on lb1 empties both too" \
		eval 'rig_wait 3000 sync_same_n 1 5 && rig_lbctl lb1 sticky flush >/dev/null && rig_wait 3000 sync_both_empty' || r=1

	# Expiry: a 5 s timeout, restarted pair.
	rig_log "  restarting the pair with sticky_timeout_s = 5"
	sync_pair_conf 's/sticky_timeout_s = [0-9]*;/sticky_timeout_s = 5;/' || return 1
	grep -q 'sticky_timeout_s = 5;' "$RIG_DIR/lb1.conf" || { rig_fail "config variant not written"; return 1; }
	sync_restart_pair || { rig_fail "the pair did not come back with the 5 s timeout"; return 1; }
	e=$(sed -n 5p <<<"$ips")
	local ts i now dur
	ts=$(rig_ms)
	out=$(sync_session c2 explicit "$e")
	t0=$(rig_ms)
	dur=$((t0 - ts))
	rig_assert "session from $e -> $out ($dur ms); entry on both" \
		rig_wait 2000 eval '[ -n "$(rig_sticky_of lb1 "$e")" ] && [ -n "$(rig_sticky_of lb2 "$e")" ]' || return 1
	echo "  figure: expires_in_s right after the session: lb1 $(rig_lbctl lb1 --json sticky get "$e" | rig_jval expires_in_s)," \
		"lb2 $(rig_lbctl lb2 --json sticky get "$e" | rig_jval expires_in_s)"
	g1="" g2=""
	for ((i = 0; i < 150; i++)); do
		now=$(( $(rig_ms) - t0 ))
		[ -z "$g1" ] && [ -z "$(rig_sticky_of lb1 "$e")" ] && g1=$now
		[ -z "$g2" ] && [ -z "$(rig_sticky_of lb2 "$e")" ] && g2=$now
		[ -n "$g1" ] && [ -n "$g2" ] && break
		((now > 9000)) && break
		sleep 0.05
	done
	echo "  figure: 5 s entry gone from lb1 at +${g1:-never} ms, from lb2 at +${g2:-never} ms after the session ended" \
		"(the session took $dur ms; its last connection refreshed the entry)"
	rig_assert "expired on both within 6.5 s of the session's end (lb1 ${g1:-never} ms, lb2 ${g2:-never} ms)" \
		eval '[ -n "$g1" ] && [ -n "$g2" ] && [ "$g1" -le 6500 ] && [ "$g2" -le 6500 ]' || r=1
	# Last use was at or after the session's start, so not gone before 5 s
	# from it, less the table's 1 s clock granularity and some slack.
	rig_assert "and not before 3.5 s after the session's start (lb1 $((${g1:-0} + dur)) ms, lb2 $((${g2:-0} + dur)) ms)" \
		eval '[ $((${g1:-0} + dur)) -ge 3500 ] && [ $((${g2:-0} + dur)) -ge 3500 ]' || r=1
	return $r
}

# Partition: both MASTER; c1's clients pinned to lb1, c2's to lb2, one
# client (.190) on both sides with different backends; heal: both tables
# hold every entry and agree on .190 by the merge rule (last writer wins).
drill_sync_partition() {
	local r=0
	sync_start || return 1
	# In a split brain the real servers' ARP entry for the VIP points at one
	# node only: connections leaving the other node from the VIP would get
	# their SYN-ACK at the wrong node.  From the node address both work.
	rig_log "  restarting the pair with source = \"node\""
	if sync_pair_conf 's/source = "vip";/source = "node";/' && sync_restart_pair; then
		_sync_partition || r=1
	else
		rig_fail "the pair did not come up with source = node"
		r=1
	fi
	sync_pin c1 del
	sync_pin c2 del
	sync_partition del
	sync_restore_pair || { rig_fail "could not restore the pair's configs"; r=1; }
	return $r
}

_sync_partition() {
	local ipa ipb x out t0 th a1 b2 x1 x2 xo r=0 m t1 t2
	ipa=$(rig_client_ip 1; sync_addrs c1 180 182) || return 1
	ipb=$(rig_client_ip 2; sync_addrs c2 184 186) || return 1
	x=$(sync_addrs c1 190 190) || return 1
	t0=$(rig_ms)
	sync_partition add || { rig_fail "could not add the blackhole routes"; return 1; }
	rig_wait_fast 5000 eval 'rig_role_is lb1 MASTER && rig_role_is lb2 MASTER'
	echo "  figure: partition: both MASTER after $RIG_WAITED_MS ms; roles lb1 $(rig_role lb1) lb2 $(rig_role lb2)"
	rig_assert "split brain: both nodes MASTER" eval 'rig_role_is lb1 MASTER && rig_role_is lb2 MASTER' || return 1
	sync_pin c1 lb1 && sync_pin c2 lb2 || { rig_fail "could not pin the clients"; return 1; }
	# shellcheck disable=SC2086
	a1=$(sync_sessions c1 explicit $ipa $x)
	# shellcheck disable=SC2086
	b2=$(sync_sessions c2 explicit $ipb)
	x1=$(awk -v c="$x" '$1 == c { print $2 }' <<<"$a1")
	rig_assert "c1's clients (A: $(xargs <<<"$ipa")) and $x through lb1 ($(sync_nfailed "$a1") failed)" \
		[ "$(sync_nfailed "$a1")" = 0 ] || return 1
	rig_assert "c2's clients (B: $(xargs <<<"$ipb")) through lb2 ($(sync_nfailed "$b2") failed)" \
		[ "$(sync_nfailed "$b2")" = 0 ] || return 1
	rig_assert "the sides did not sync: lb2 has no A entry, lb1 no B entry" \
		eval '[ -z "$(rig_sticky_of lb2 "$(rig_client_ip 1)")" ] && [ -z "$(rig_sticky_of lb1 "$(rig_client_ip 2)")" ]' || return 1
	# The conflict: .190 again, now through lb2, where its lb1 server is
	# disabled so lb2 picks the other one.
	[ "$x1" = FTP_SVR1 ] && xo=FTP_SVR2 || xo=FTP_SVR1
	rig_lbctl lb2 backend "$x1" disable >/dev/null
	sync_pin c1 lb2
	sleep 0.05
	x2=$(sync_session c1 explicit "$x")
	sync_pin c1 lb1
	rig_lbctl lb2 backend "$x1" enable >/dev/null
	rig_assert "conflict: $x -> $x1 on lb1, then -> $x2 on lb2 (later)" \
		eval '[ "$(rig_sticky_of lb1 "$x")" = "$x1" ] && [ "$(rig_sticky_of lb2 "$x")" = "$x2" ] && [ "$x2" = "$xo" ]' || r=1
	t1=$(sync_table lb1)
	t2=$(sync_table lb2)
	echo "  figure: during the partition lb1 holds $(sync_n "$t1") entries, lb2 $(sync_n "$t2")"
	sleep 0.5
	th=$(rig_ms)
	sync_partition del
	rig_wait 15000 eval 'sync_both_synced && sync_same_n 9 30'
	echo "  figure: heal: tables merged and identical $RIG_WAITED_MS ms after it (channel reconnect with backoff, then bulk both ways)"
	m=$(rig_wait 10000 rig_ha_master_is lb1 && rig_ha_master)
	echo "  figure: after the heal MASTER ${m:-none}; roles lb1 $(rig_role lb1) lb2 $(rig_role lb2)"
	local h1 h2 ip bad=0
	h1=$(sync_table lb1)
	h2=$(sync_table lb2)
	while read -r ip s; do
		[ -n "$ip" ] && [ "$ip" != "$x" ] || continue
		[ "$(sync_backend_in "$h1" "$ip")" = "$s" ] && [ "$(sync_backend_in "$h2" "$ip")" = "$s" ] || bad=$((bad + 1))
	done <<<"$a1
$b2"
	rig_assert "both healed tables hold all 8 A and B entries with their sides' backends ($bad wrong or missing; lb1 $(sync_n "$h1"), lb2 $(sync_n "$h2") entries)" \
		[ "$bad" = 0 ] || r=1
	rig_assert "both tables identical (9 entries)" [ "$(sync_pairs "$h1")" = "$(sync_pairs "$h2")" ] || r=1
	echo "  figure: conflict $x: lb1 wrote $x1, lb2 wrote $x2 later; healed: lb1 $(sync_backend_in "$h1" "$x"), lb2 $(sync_backend_in "$h2" "$x")"
	rig_assert "both nodes agree on $x: the last writer's (lb2's) $x2 (merge rule: version, then node name)" \
		eval '[ "$(sync_backend_in "$h1" "$x")" = "$x2" ] && [ "$(sync_backend_in "$h2" "$x")" = "$x2" ]' || r=1
	rig_assert "the pair settled with lb1 MASTER" rig_wait 10000 sync_pair_ok || r=1
	return $r
}

# Writes the sync channel attacker (python, no package needed) into the
# run's dir once.
sync_tool() {
	SYNC_TOOL=$RIG_DIR/synctool.py
	[ -f "$SYNC_TOOL" ] && return 0
	cat >"$SYNC_TOOL" <<'EOF'
#!/usr/bin/env python3
"""synctool.py - the sync drills' attacker of lbd's replication channel
(TCP sync_port; framing and hello in proto/README.md).  Written into the
rig's run dir by tests/rig/drill-sync.sh.  Each subcommand prints one JSON
object.  Every connection and read is bounded.

  stream --pcap F --src A --dst B --port P --out HEX
      the A -> B:P byte stream of the connection (of those whose SYN the
      capture holds) that carried most, reassembled by sequence, as hex.
  send --host H --port P [--bind A] --mode M [--count N] [--key F]
      [--node NAME] [--stream HEX] [--md5-key F]; M is one of
      garbage    N connections of 16-600 random bytes
      huge       a length of 0xfffffff0 and some bytes
      truncated  a 200-byte hello announced, 40 bytes sent, then EOF
      forge      a fresh hello of NODE MACed with F's cluster key
      replay     the captured stream, sent again as it was
      --md5-key F signs the connections' TCP segments (TCP_MD5SIG) with
      F's cluster key, as lbd does: without it a node drops the SYN from
      its peer's address (the connect times out, nothing is counted).
"""
import argparse, base64, hashlib, hmac, json, os, random, socket, struct, sys, time

KDF_CONTEXT = b"lbdsynch"	# channel.c: hello MAC and session keys
MD5_CONTEXT = b"lbdtcpmd"	# channel.c: the TCP_MD5SIG key, subkey id 1
TCP_MD5SIG = 14			# <netinet/tcp.h>
HELLO_KEY_ID = 1		# crypto_kdf subkey id of the hello MAC
KIND_HELLO, KIND_SEALED = 1, 2	# frame kinds
MAX_CONN = 200			# bound on connections per run
READ_S = 2.0			# how long to wait for the node's answer


def kdf(key, ident, ctx):
    """libsodium crypto_kdf_derive_from_key (BLAKE2b, 32 bytes)."""
    return hashlib.blake2b(b"", digest_size=32, key=key,
                           salt=struct.pack("<Q", ident) + bytes(8),
                           person=ctx + bytes(8)).digest()


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fld_v(num, v):
    return varint(num << 3) + varint(v)


def fld_b(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def hello(keyfile, node):
    key = base64.b64decode(open(keyfile).read().strip())
    # Protocol 2; kx_public random bytes: any 32 are an X25519 point, and
    # the node's confirmation comes before our (absent) key would be used.
    h = (fld_v(1, 2) + fld_b(2, node.encode()) + fld_v(3, time.time_ns())
         + fld_b(4, os.urandom(32)) + fld_b(5, os.urandom(32)))
    body = bytes([KIND_HELLO]) + fld_b(1, h)	# SyncFrame{hello}
    mac = hmac.new(kdf(key, HELLO_KEY_ID, KDF_CONTEXT), body, hashlib.sha512).digest()[:32]
    body += mac
    return struct.pack(">I", len(body)) + body


def kinds(buf):
    """Kinds of the complete frames in buf."""
    out, i = [], 0
    while i + 5 <= len(buf):
        n = struct.unpack(">I", buf[i:i + 4])[0]
        if n == 0 or i + 4 + n > len(buf):
            break
        out.append(buf[i + 4])
        i += 4 + n
    return out


def md5_sign(s, host, keyfile):
    """TCP_MD5SIG on s for host, keyed as channel.c keys it."""
    key = kdf(base64.b64decode(open(keyfile).read().strip()), 1, MD5_CONTEXT)
    sa = struct.pack("=HH4s", socket.AF_INET, 0, socket.inet_aton(host)).ljust(128, b"\0")
    s.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG,
                 sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(80, b"\0"))


def one(host, port, bind, data, wait_sealed=False, md5_key=None):
    """Connects, sends data, half-closes (unless waiting for a sealed
    answer) and reads until the node closes or READ_S passes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(READ_S)
    if md5_key:
        md5_sign(s, host, md5_key)
    if bind:
        s.bind((bind, 0))
    got, closed, err = b"", False, None
    try:
        s.connect((host, port))
        s.sendall(data)
        if not wait_sealed:
            s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + READ_S
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            got += b
            if wait_sealed and KIND_SEALED in kinds(got):
                break
    except socket.timeout:
        pass
    except OSError as e:
        err = e.strerror or str(e)
        closed = True
    s.close()
    return {"closed": closed, "kinds": kinds(got), "error": err}


def cmd_send(a):
    n = min(a.count, MAX_CONN)
    res = []
    for _ in range(n):
        wait = False
        if a.mode == "garbage":
            data = os.urandom(random.randint(16, 600))
        elif a.mode == "huge":
            data = struct.pack(">I", 0xFFFFFFF0) + bytes([KIND_SEALED]) + os.urandom(64)
        elif a.mode == "truncated":
            data = struct.pack(">I", 200) + bytes([KIND_HELLO]) + os.urandom(39)
        elif a.mode == "forge":
            data, wait = hello(a.key, a.node), True
        elif a.mode == "replay":
            data = bytes.fromhex(open(a.stream).read().strip())
        res.append(one(a.host, a.port, a.bind, data, wait, a.md5_key))
    return {"mode": a.mode, "sent": len(res),
            "closed_by_node": sum(r["closed"] for r in res),
            "sealed_answers": sum(KIND_SEALED in r["kinds"] for r in res),
            "hello_answers": sum(KIND_HELLO in r["kinds"] for r in res),
            "errors": sorted(set(r["error"] for r in res if r["error"]))}


def cmd_stream(a):
    data = open(a.pcap, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return {"error": "not a pcap file"}
    link = struct.unpack(e + "I", data[20:24])[0]
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    conns = {}		# sport -> {"isn", "segs"}
    order = []
    i = 24
    for _ in range(200000):
        if i + 16 > len(data):
            break
        incl = struct.unpack(e + "I", data[i + 8:i + 12])[0]
        pkt = data[i + 16:i + 16 + incl]
        i += 16 + incl
        if link == 1:
            if len(pkt) < 14 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
        elif link == 113:	# Linux cooked
            ip = pkt[16:]
        else:
            continue
        if len(ip) < 20 or ip[9] != 6 or ip[12:16] != src or ip[16:20] != dst:
            continue
        ihl = (ip[0] & 15) * 4
        tlen = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:tlen]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        if dport != a.port:
            continue
        flags = tcp[13]
        off = (tcp[12] >> 4) * 4
        if flags & 2:
            conns[sport] = {"isn": seq, "segs": {}}
            order.append(sport)
            continue
        if sport in conns and len(tcp) > off:
            conns[sport]["segs"][seq] = tcp[off:]
    if not order:
        return {"error": "no connection with a SYN in the capture"}
    out = b""
    for sport in order:		# refused attempts carry nothing: the longest
        c = conns[sport]
        pos, got = (c["isn"] + 1) & 0xFFFFFFFF, b""
        for _ in range(100000):
            seg = c["segs"].get(pos)
            if seg is None:
                break
            got += seg
            pos = (pos + len(seg)) & 0xFFFFFFFF
        if len(got) > len(out):
            out = got
    with open(a.out, "w") as f:
        f.write(out.hex())
    return {"connections": len(order), "bytes": len(out), "frames": len(kinds(out)),
            "kinds": kinds(out)[:8]}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stream")
    s.add_argument("--pcap", required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, default=7412)
    s.add_argument("--out", required=True)
    s = sub.add_parser("send")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, default=7412)
    s.add_argument("--bind")
    s.add_argument("--mode", required=True,
                   choices=["garbage", "huge", "truncated", "forge", "replay"])
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--key")
    s.add_argument("--node", default="lb1")
    s.add_argument("--stream")
    s.add_argument("--md5-key")
    a = p.parse_args()
    out = cmd_stream(a) if a.cmd == "stream" else cmd_send(a)
    print(json.dumps(out))
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
EOF
}

# Runs synctool.py in NODE.  Usage: sync_py NODE ARGS...
sync_py() {
	local node=$1; shift
	sync_tool
	rig_exec "$node" timeout 60 python3 "$SYNC_TOOL" "$@"
}

# "auth_failures replays malformed oversized rejected reconnects role
# role_changes sync_state" of NODE.
sync_chan_snap() {
	local -A st
	local k out=
	rig_status_into "$1" st || { echo down; return 1; }
	for k in auth_failures replays malformed oversized rejected reconnects; do
		out="$out ${st[sync.channel.$k]:--}"
	done
	echo "${out# } ${st[role]:--} ${st[ha.role_changes]:--} ${st[sync.state]:--}"
}

# Field N of a sync_chan_snap line.
sync_cf() { awk -v n="$2" '{ print $n }' <<<"$1"; }

# Garbage, wrong-key, truncated, oversized and replayed frames at lb2's
# sync port from lb1's address (the only source lb2 accepts), and random
# bytes from a client namespace to both nodes: tables, roles and the real
# channel unchanged; each kind counted.  The attacks from lb1's address
# sign their TCP segments with the real TCP_MD5SIG key (else lb2's kernel
# drops their SYN and the hello layer is never reached: one unsigned
# attempt checks that), so they test the layers above it.
drill_sync_forged() {
	local ips out cap=$RIG_DIR/sync7412.pcap hex=$RIG_DIR/sync-stream.hex r=0 i n
	local lb1ip=${RIG_ADDR[lb1]} lb2ip=${RIG_ADDR[lb2]}
	local -A before after
	sync_start || return 1
	sync_tool
	(umask 077 && "$RIG_LBD" --genkey >"$RIG_DIR/sync-wrong.key") || { rig_fail "lbd --genkey"; return 1; }

	# A real session to replay: lb2 (BACKUP) restarted while tcpdump listens
	# on its eth0; lb1 (the lower address) connects to it.
	rm -f "$cap"
	rig_bg lb2 sync-tcpdump "$RIG_DIR/sync-tcpdump.log" timeout 30 \
		tcpdump -i eth0 -n -U -Z root -w "$cap" "tcp port 7412"
	rig_wait 5000 grep -q 'listening on' "$RIG_DIR/sync-tcpdump.log" ||
		{ rig_fail "tcpdump did not start: $(cat "$RIG_DIR/sync-tcpdump.log")"; rig_kill sync-tcpdump; return 1; }
	rig_lb_stop lb2
	( rig_lb_start lb2 ) || { rig_kill sync-tcpdump; return 1; }
	rig_wait 15000 sync_pair_ok
	sleep 1.2	# a keepalive or so more
	rig_kill sync-tcpdump TERM
	out=$(sync_py lb2 stream --pcap "$cap" --src "$lb1ip" --dst "$lb2ip" --out "$hex")
	rig_assert "captured lb1's side of a real sync session: $out" \
		eval '[ "$(rig_jval frames <<<"$out")" -ge 2 ] 2>/dev/null' || return 1
	rig_assert "pair settled after lb2's restart" sync_pair_ok || return 1

	ips=$(sync_addrs c2 191 195) || return 1
	# shellcheck disable=SC2086
	out=$(sync_sessions c2 explicit $ips)
	rig_assert "5 clients, replicated ($(sync_nfailed "$out") failed)" \
		eval '[ "$(sync_nfailed "$out")" = 0 ] && rig_wait 5000 sync_same_n 5 5' || return 1
	local t1=$SYNC_T1 t2=$SYNC_T2
	for n in lb1 lb2; do before[$n]=$(sync_chan_snap "$n"); done

	local -A sent
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode garbage --count 20)
	echo "  -> lb2 from lb1's address, random bytes: $out"
	sent[garbage]=$(rig_jval sent <<<"$out")
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode huge --count 5)
	echo "  -> lb2 from lb1's address, length 0xfffffff0: $out"
	sent[huge]=$(rig_jval sent <<<"$out")
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode truncated --count 5)
	echo "  -> lb2 from lb1's address, 200-byte frame cut after 40 bytes: $out"
	sent[truncated]=$(rig_jval sent <<<"$out")
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode forge --key "$RIG_DIR/sync-wrong.key" --count 10)
	echo "  -> lb2 from lb1's address, lb1's hello MACed with another key: $out"
	sent[wrongkey]=$(rig_jval sent <<<"$out")
	local wk_sealed
	wk_sealed=$(rig_jval sealed_answers <<<"$out")
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode replay --stream "$hex" --count 5)
	echo "  -> lb2 from lb1's address, the captured session replayed: $out"
	sent[replay]=$(rig_jval sent <<<"$out")
	local rp_sealed
	rp_sealed=$(rig_jval sealed_answers <<<"$out")
	# Unsigned from lb1's address, a real-key hello: the SYN is dropped.
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --mode forge --key "$RIG_DIR/cluster.key" --count 1)
	echo "  -> lb2 from lb1's address, unsigned TCP, a real-key hello: $out"
	local us_hello
	us_hello=$(rig_jval hello_answers <<<"$out")
	# Control: a fresh hello with the real key passes (lb2 answers with its
	# sealed confirmation), which proves the forger frames as lbd does.
	out=$(sync_py lb1 send --host "$lb2ip" --bind "$lb1ip" --md5-key "$RIG_DIR/cluster.key" --mode forge --key "$RIG_DIR/cluster.key" --count 1)
	echo "  -> lb2 from lb1's address, control: a fresh hello with the cluster key: $out"
	local ctl_sealed
	ctl_sealed=$(rig_jval sealed_answers <<<"$out")
	# From a client: refused at accept by both nodes.
	for n in lb1 lb2; do
		out=$(sync_py c2 send --host "${RIG_ADDR[$n]}" --mode garbage --count 5)
		echo "  -> $n from c2, random bytes: $out"
		out=$(sync_py c2 send --host "${RIG_ADDR[$n]}" --mode replay --stream "$hex" --count 2)
		echo "  -> $n from c2, the captured session replayed: $out"
	done
	sleep 0.5
	for n in lb1 lb2; do after[$n]=$(sync_chan_snap "$n"); done

	local names=(auth_failures replays malformed oversized rejected reconnects role role_changes sync_state) fig k
	for n in lb1 lb2; do
		fig="$n:"
		for ((k = 1; k <= 9; k++)); do
			fig="$fig ${names[k - 1]} $(sync_cf "${before[$n]}" $k)->$(sync_cf "${after[$n]}" $k)"
		done
		echo "  figure: $fig"
	done
	local b=${before[lb2]} a=${after[lb2]} d
	_sync_d() { local x y; x=$(sync_cf "$b" "$1"); y=$(sync_cf "$a" "$1"); [[ $x$y =~ ^[0-9]+$ ]] && echo $((y - x)) || echo -; }
	d=$(_sync_d 1)
	rig_assert "lb2: auth_failures +$d >= ${sent[wrongkey]} wrong-key hellos (none answered with a sealed frame: $wk_sealed)" \
		eval '[ "$d" != - ] && [ "$d" -ge "${sent[wrongkey]}" ] && [ "$wk_sealed" = 0 ]' || r=1
	d=$(_sync_d 2)
	rig_assert "lb2: replays +$d >= ${sent[replay]} replayed sessions (none got further than the hello: $rp_sealed sealed answers)" \
		eval '[ "$d" != - ] && [ "$d" -ge "${sent[replay]}" ] && [ "$rp_sealed" = 0 ]' || r=1
	d=$(_sync_d 3)
	rig_assert "lb2: malformed +$d >= ${sent[truncated]} truncated frames" \
		eval '[ "$d" != - ] && [ "$d" -ge "${sent[truncated]}" ]' || r=1
	d=$(_sync_d 4)
	rig_assert "lb2: oversized +$d >= ${sent[huge]} huge lengths" \
		eval '[ "$d" != - ] && [ "$d" -ge "${sent[huge]}" ]' || r=1
	local tot
	tot=$(( $(_sync_d 1) + $(_sync_d 2) + $(_sync_d 3) + $(_sync_d 4) ))
	rig_assert "lb2: every bad connection counted once or more ($tot >= $((sent[garbage] + sent[huge] + sent[truncated] + sent[wrongkey] + sent[replay])) incl. ${sent[garbage]} random)" \
		[ "$tot" -ge $((sent[garbage] + sent[huge] + sent[truncated] + sent[wrongkey] + sent[replay])) ] || r=1
	rig_assert "control: the real key's fresh hello was answered with a sealed confirmation ($ctl_sealed)" \
		[ "$ctl_sealed" = 1 ] || r=1
	rig_assert "unsigned TCP from lb1's address never reached the hello (hello answers: $us_hello)" \
		[ "$us_hello" = 0 ] || r=1
	for n in lb1 lb2; do
		b=${before[$n]} a=${after[$n]}
		d=$(_sync_d 5)
		rig_assert "$n: rejected +$d >= 7 connections from c2" eval '[ "$d" != - ] && [ "$d" -ge 7 ]' || r=1
		rig_assert "$n: role $(sync_cf "$a" 7), role_changes unchanged ($(sync_cf "$b" 8) -> $(sync_cf "$a" 8)), sync $(sync_cf "$a" 9), channel reconnects unchanged" \
			eval '[ "$(sync_cf "$b" 7)/$(sync_cf "$b" 8)/$(sync_cf "$b" 6)" = "$(sync_cf "$a" 7)/$(sync_cf "$a" 8)/$(sync_cf "$a" 6)" ] && [ "$(sync_cf "$a" 9)" = synced ]' || r=1
	done
	rig_assert "sticky tables unchanged on both" \
		eval 'sync_same 5 && [ "$(sync_pairs "$SYNC_T1")" = "$(sync_pairs "$t1")" ] && [ "$(sync_pairs "$SYNC_T2")" = "$(sync_pairs "$t2")" ]' || r=1
	sync_addrs c2 196 196 >/dev/null
	out=$(sync_session c2 explicit "$RIG_NET.196")
	rig_assert "the real channel still replicates: a new client's entry ($out) reaches lb2" \
		rig_wait 3000 eval '[ "$(rig_sticky_of lb2 "$RIG_NET.196")" = "$out" ]' || r=1
	rig_assert "settled as before: MASTER $(rig_ha_master 2>/dev/null)" rig_ha_master_is lb1 || r=1
	return $r
}
