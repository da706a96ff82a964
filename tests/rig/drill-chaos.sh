# drill-chaos.sh - chaos: a seeded random sequence of faults injected into
# the pair under continuous load, with the invariants of a production pair
# checked all along.  Pair drill (RIG_LB_NODES="lb1 lb2", after ha_reset),
# the last of PAIR_DRILLS: `make chaos` runs it alone (CHAOS_CYCLES, default
# 100), `make rig` and `make check` a short one (CHAOS_CYCLES=10).
#
#   CHAOS_SEED=1234 CHAOS_CYCLES=30 tests/rig/run-drills chaos   # replay a run
#
# Faults (CHAOS_KINDS, drawn uniformly): kill -9 of the MASTER's lbd or of
# the BACKUP's (each then restarted as systemd would: the stop hook
# lbd-release-vip, RestartSec, start), power-off of the MASTER (link down,
# kill -9, kernel sockets gone, stop hook, link up, start), the MASTER's
# link down and up, partition and heal, SIGTERM of the MASTER (started
# again a second later), `lbctl failover`, a restart of either node as
# `systemctl restart` does it, `lbctl reload` of both nodes with FTP_SVR1's
# weight changed, a real server stopped and started.
#
# Load the whole time: 50 sticky clients (c2, .150-.199) opening short
# explicit FTPS sessions (sessions.py sticky), a download loop (curl,
# its first 4 MiB of big.bin at 16 MB/s, c1), and the outage probe (c1, every 50 ms).  Before each kill -9 or power-off of the
# MASTER, CHAOS_HOLD idle mirrored sessions are opened (sessions.py hold),
# and must all go on after it.
#
# Invariants, each a counted figure:
# - at most one node holds the VIP (ip monitor on both eth0, every change):
#   both holding it with both links up for longer than 2 advert intervals,
#   outside a partition or past 2 intervals after its heal, fails the run;
# - after each settle both sticky tables are equal and hold every entry of
#   the MASTER's table before the fault (a server stopped lets its clients
#   move), and each sticky client's next session lands on its real server;
# - every idle mirrored session survives every kill -9 and power-off;
# - no lbd exits but the injected ones;
# - fds and RSS of each lbd process grow by at most CHAOS_FD_GROWTH and
#   CHAOS_RSS_GROWTH_KB over its life;
# - after the run, both lbd stopped: no nftables table, VIP or rule left.
# The run ends with a table: fault kind, count, outage p50/max, sessions
# survived, entries lost.

# CHAOS_CYCLES: read when the drill runs (default 100; run-drills' default list sets 10).
CHAOS_KINDS=${CHAOS_KINDS:-kill_master kill_backup poweroff linkdown partition sigterm failover restart reload server}
CHAOS_HOLD=${CHAOS_HOLD:-6}			# idle mirrored sessions per kill -9 / power-off
CHAOS_FD_GROWTH=${CHAOS_FD_GROWTH:-64}
CHAOS_RSS_GROWTH_KB=${CHAOS_RSS_GROWTH_KB:-16384}
CHAOS_SETTLE_MS=${CHAOS_SETTLE_MS:-20000}	# bound on each settle

_chaos_tl() { echo "$*" >>"$RIG_DIR/chaos-timeline.log"; }

# systemd's ExecStopPost after NODE's lbd ended (VIP, steering, fence).
_chaos_stophook() {
	rig_exec "$1" sh "$RIG_TOP/deploy/lbd-release-vip" -c "$RIG_DIR/$1.conf" >/dev/null 2>&1
}

# True when NODE reaches its peer (its link passes traffic again).
_chaos_online() { rig_exec "$1" arping -q -c 1 -w 1 -I eth0 "${RIG_ADDR[$(rig_lb_other "$1")]}"; }

# Kills NODE's lbd (SIGNAL), waits for its end (a SIGTERM'd MASTER drains
# its connections first, at most handover_drain_s), runs the stop hook.
_chaos_down() {
	local node=$1 sig=$2 pid
	pid=$(rig_lb_pid "$node")
	[ -n "$pid" ] && kill -"$sig" "$pid" 2>/dev/null
	rig_wait 70000 eval "! rig_pid_running $pid" ||
		echo "  chaos: lbd on $node did not exit 70 s after SIG$sig"
	rig_lb_stop "$node" KILL	# reaps the pid file
	_chaos_stophook "$node"
}

# "fds rss_kb pid" of NODE's lbd.
_chaos_res() {
	local pid rss
	pid=$(rig_lb_pid "$1")
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	echo "$(rig_lb_fds "$1") ${rss:-0} ${pid:-0}"
}

# Opens CHAOS_HOLD idle sessions (tag chaos-K) from c1 and waits for the
# BACKUP to hold them.  Usage: _chaos_hold K BACKUP
_chaos_hold() {
	local k=$1 b=$2 o
	rm -f "$RIG_DIR/chaos-h$k".*
	rig_bg c1 "chaos-h$k" "$RIG_DIR/chaos-h$k.log" timeout 120 \
		python3 "$RIG_SRC/sessions.py" --tls-max "$RIG_TLS_MAX" hold "$RIG_VIP" --count "$CHAOS_HOLD" \
		--go "$RIG_DIR/chaos-h$k.go" --rounds 1 --ready "$RIG_DIR/chaos-h$k.ready" \
		--max-wait 60 --timeout 5
	rig_wait 20000 test -s "$RIG_DIR/chaos-h$k.ready" || return 1
	o=$(cat "$RIG_DIR/chaos-h$k.ready")
	[ "$(rig_jval opened <<<"$o")" = "$CHAOS_HOLD" ] || return 1
	rig_wait 5000 _mirror_held_at_least "$b" "$CHAOS_HOLD"
}

# Round 1 of the held sessions of cycle K; prints "survived of".
_chaos_hold_check() {
	local k=$1 l
	touch "$RIG_DIR/chaos-h$k.go.1"
	rig_wait 45000 grep -q '"round": 1,' "$RIG_DIR/chaos-h$k.log"
	l=$(grep '"round": 1,' "$RIG_DIR/chaos-h$k.log" | tail -1)
	rig_kill "chaos-h$k"
	echo "$(rig_jval survived <<<"$l") $CHAOS_HOLD"
}

# "missing wrong" entries of table BEFORE (sync_table output) in table
# AFTER, leaving out clients of backend FREE (a server stopped: they move).
_chaos_lost() {
	local before=$1 after=$2 free=${3:-none}
	sync_lost "$(awk -v f="$free" '$3 != f' <<<"$before")" "$after"
}

# One fault of KIND; sets CH_T0 (event), CH_FREE (a stopped backend, or
# none), CH_HOLD (1: kill -9 or power-off of the MASTER).  M is the MASTER.
_chaos_inject() {
	local kind=$1 m=$2 b t
	b=$(rig_lb_other "$m")
	CH_FREE=none
	CH_T0=$(rig_ms)
	case $kind in
	kill_master)
		_chaos_down "$m" KILL
		rig_wait_fast 5000 rig_role_is "$b" MASTER
		rig_lb_restart_systemd "$m" "$CH_T0" ;;
	kill_backup)
		_chaos_down "$b" KILL
		rig_lb_restart_systemd "$b" "$CH_T0" ;;
	poweroff)
		rig_link "$m" down
		kill -KILL "$(rig_lb_pid "$m")" 2>/dev/null
		rig_lb_stop "$m" KILL
		rig_wait_fast 5000 rig_role_is "$b" MASTER
		# The node comes back with no TCP state and no VIP (a rebooted kernel).
		rig_exec "$m" ss -K -tn >/dev/null 2>&1
		_chaos_stophook "$m"
		sleep 0.5
		rig_link "$m" up
		_chaos_tl "link $m $CH_T0 $(rig_ms)"
		# Booted: lbd starts once the network is online (the unit's
		# After=network-online.target), not while the link still settles.
		rig_wait 5000 _chaos_online "$m" || echo "  chaos: $m cannot reach ${RIG_ADDR[$b]} 5 s after its link came up"
		rig_lb_restart_systemd "$m" "$CH_T0" ;;
	linkdown)
		rig_link "$m" down
		rig_wait_fast 5000 rig_role_is "$b" MASTER
		sleep 1
		rig_link "$m" up
		_chaos_tl "link $m $CH_T0 $(rig_ms)" ;;
	partition)
		_ha_partition add
		rig_wait 3000 rig_role_is "$b" MASTER
		sleep 0.5
		_ha_partition del
		_chaos_tl "part - $CH_T0 $(rig_ms)" ;;
	sigterm)
		_chaos_down "$m" TERM
		rig_wait 5000 rig_role_is "$b" MASTER
		sleep 1
		rig_lb_start "$m" ;;
	failover)
		# Refused while the peer still drains the last handover (by design): said, not waited for.
		if t=$(rig_lbctl "$m" failover 2>&1); then
			rig_wait 10000 rig_role_is "$b" MASTER
		else
			echo "  chaos: lbctl failover on $m refused: $(cut -c1-160 <<<"$t")"
		fi ;;
	restart)
		t=lb$((RANDOM % 2 + 1))
		_chaos_down "$t" TERM
		rig_lb_start "$t" ;;
	reload)
		[ "${RIG_WEIGHT1:-1}" = 1 ] && RIG_WEIGHT1=2 || RIG_WEIGHT1=1
		rig_lb_conf lb1 lb2
		rig_lb_conf lb2 lb1
		rig_lbctl lb1 reload >/dev/null 2>&1 && rig_lbctl lb2 reload >/dev/null 2>&1 ||
			echo "  chaos: reload refused" ;;
	server)
		t=ftp$((RANDOM % 2 + 1))
		CH_FREE=FTP_SVR${t#ftp}
		rig_ftp_stop "$t"
		_chaos_tl "server $CH_FREE $CH_T0 $(rig_ms)"
		rig_wait 10000 rig_backend_is "$m" "$CH_FREE" down
		rig_ftp_start "$t" ;;
	esac
}

# Post-processing of the run's files (python3): the VIP's holders from both
# ip monitor logs, against the link and partition windows; the sticky
# clients' sessions against the server windows.  Prints
# "key=value" lines.
_chaos_analyse() {
	python3 - "$RIG_DIR" "$(_ha_iv)" <<'EOF'
import datetime, json, re, sys, time
d, iv = sys.argv[1], int(sys.argv[2])
def ms(stamp):
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return time.mktime(t.timetuple()) * 1000 + t.microsecond / 1000.0
tl = [l.split() for l in open(d + "/chaos-timeline.log")]
start = int([x for x in tl if x[0] == "start"][0][2])
end = int([x for x in tl if x[0] == "end"][0][2])
links = {n: [(int(a), int(b)) for k, nn, a, b in [x[:4] for x in tl if x[0] == "link"] if nn == n] for n in ("lb1", "lb2")}
parts = [(int(x[2]), int(x[3])) for x in tl if x[0] == "part"]
servers = [(x[1], int(x[2]), int(x[3])) for x in tl if x[0] == "server"]
init = {x[1]: x[2] == "1" for x in tl if x[0] == "holder"}
vip = open(d + "/chaos.vip").read().strip()
events = []
for n in ("lb1", "lb2"):
    for line in open(d + "/chaos-mon-%s.log" % n, errors="replace"):
        if not line.startswith("[") or (" inet %s/" % vip) not in line:
            continue
        # "[stamp] [stamp] Deleted ...": ip prints a stamp for a line it
        # leaves empty; the event's own is the last one before the text.
        m = re.match(r"^((?:\[[^]]*\]\s*)+)(.*)$", line)
        stamp = re.findall(r"\[([^]]*)\]", m.group(1))[-1]
        events.append((ms(stamp), n, not m.group(2).startswith("Deleted")))
events.sort(key=lambda e: e[0])	# stable: one node's events keep their order
# Intervals both hold it with both links up.
hold = dict(init)
def linked(n, t):
    return not any(a <= t <= b for a, b in links[n])
pts = sorted(set([start, end] + [e[0] for e in events] + [t for n in links for ab in links[n] for t in ab]))
both = []
ei = 0
for i, t in enumerate(pts[:-1]):
    while ei < len(events) and events[ei][0] <= t:
        hold[events[ei][1]] = events[ei][2]
        ei += 1
    t2 = pts[i + 1]
    mid = (t + t2) / 2
    if hold.get("lb1") and hold.get("lb2") and linked("lb1", mid) and linked("lb2", mid):
        if both and both[-1][1] == t:
            both[-1][1] = t2
        else:
            both.append([t, t2])
# A crashed node's kernel keeps the VIP until the stop hook removes it
# (lbd-release-vip, a shell script: ~50-250 ms here): an overlap that
# begins within 1 s of a kill -9 may last CRASH_MS; any other, 2
# intervals, or until 2 intervals past a partition's heal.
CRASH_MS = 1000
kills = [int(x[2]) for x in tl if x[0] == "fault" and x[1] in ("kill_master", "poweroff")]
bad = []
longest = longest_crash = 0
for a, b in both:
    allowed_end = a + 2 * iv
    crash = any(k <= a <= k + 1000 for k in kills)
    if crash:
        allowed_end = a + CRASH_MS
        longest_crash = max(longest_crash, b - a)
    for pa, pb in parts:
        if pa - 2 * iv <= a <= pb + 2 * iv:
            allowed_end = max(allowed_end, pb + 2 * iv)
    if not crash:
        longest = max(longest, b - a)
    if b > allowed_end:
        bad.append((a - start, b - a, b - allowed_end))
print("vip_double=%d" % len(both))
print("vip_double_longest_ms=%d" % longest)
print("vip_double_crash_longest_ms=%d" % longest_crash)
print("vip_double_bad=%d" % len(bad))
print("vip_double_bad_list=%s" % ";".join("at+%dms %dms (%dms too long)" % x for x in bad[:5]))
print("vip_events=%d" % len(events))
# Sticky clients: consecutive successful sessions of a client on two servers.
last = {}
moves = bad_moves = n = ok = 0
badl = []
for line in open(d + "/chaos-sticky.log", errors="replace"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if "src" not in r:
        continue
    n += 1
    if not r.get("server"):
        continue
    ok += 1
    c = r["src"]
    if c in last and last[c][1] != r["server"]:
        moves += 1
        t_prev, s_prev = last[c]
        if not any(s == s_prev and t_prev < a < r["t0"] for s, a, _ in servers):
            bad_moves += 1
            badl.append("%s %s->%s at+%dms" % (c, s_prev, r["server"], r["t0"] - start))
    last[c] = (r["t0"], r["server"])
print("sticky_sessions=%d" % n)
print("sticky_ok=%d" % ok)
print("sticky_clients=%d" % len(last))
print("sticky_moves=%d" % moves)
print("sticky_bad_moves=%d" % bad_moves)
print("sticky_bad_list=%s" % ";".join(badl[:5]))
EOF
}

# Starts what a chaos or soak run needs: the timeline, the VIP monitors,
# the load.  Uses the caller's res0 (and sets SRC_SEED... nothing else).
_chaos_begin() {
	local n src
	: >"$RIG_DIR/chaos-timeline.log"
	echo "$RIG_VIP" >"$RIG_DIR/chaos.vip"
	rm -f "$RIG_DIR/chaos.stop"
	src=$(_mirror_src c2 150 199) || { rig_fail "cannot add the sticky clients' addresses"; return 1; }
	for n in lb1 lb2; do
		rig_bg "$n" "chaos-mon-$n" "$RIG_DIR/chaos-mon-$n.log" ip -ts monitor address dev eth0
		_chaos_tl "holder $n $(_rig_vip_on "$n" && echo 1 || echo 0)"
		res0[$n]=$(_chaos_res "$n")
		resmax[$n]=${res0[$n]}
	done
	sleep 0.2
	_chaos_tl "start - $(rig_ms)"
	rig_bg c2 chaos-sticky "$RIG_DIR/chaos-sticky.log" timeout 7200 \
		python3 "$RIG_SRC/sessions.py" --tls-max "$RIG_TLS_MAX" sticky "$RIG_VIP" --source "$src" \
		--stop "$RIG_DIR/chaos.stop" --seconds 7200 --par 2 --gap-ms 300
	rig_bg c1 chaos-xfer "$RIG_DIR/chaos-xfer.log" timeout 7200 bash -c "
		for i in \$(seq 1 100000); do
			[ -f '$RIG_DIR/chaos.stop' ] && break
			curl ${RIG_CURL_OPTS[*]} --ssl-reqd --limit-rate 16M -r 0-4194303 -o /dev/null \
				ftp://$(rig_url_host "$RIG_VIP")/big.bin >/dev/null 2>&1
			echo \"\$(date +%s%3N) \$?\"
			sleep 0.2
		done"
	sleep 2
	before=$(sync_table lb1)
}

# One fault of KIND (cycle K, of TOTAL) and the checks after it; adds to
# the caller's tables (cnt outs survd heldn lostk res0 resmax exits,
# before).  Returns 1 when an invariant failed.
_chaos_cycle() {
	local k=$1 kind=$2 total=$3 m m2 line out surv=- of lost miss wrong t1 pid ok n rc=0
	m=$(rig_ha_master) || { rig_fail "cycle $k: no single MASTER before the fault"; return 1; }
	CH_HOLD=0
	if [ "$kind" = kill_master ] || [ "$kind" = poweroff ]; then
		CH_HOLD=1
		_chaos_hold "$k" "$(rig_lb_other "$m")" ||
			echo "  chaos: cycle $k: held sessions not ready ($(tail -1 "$RIG_DIR/chaos-h$k.log" | cut -c1-200))"
	fi
	[ -n "$before" ] || before=$(sync_table "$m")
	rig_probe_start c1 chaos-probe 120 >/dev/null || true
	_chaos_tl "fault $kind $(rig_ms) $m"
	_chaos_inject "$kind" "$m"
	m2=$(_ha_settle "$CHAOS_SETTLE_MS") || { rig_fail "cycle $k ($kind): the pair did not settle"; rc=1; }
	rig_wait 15000 rig_backends_up lb1 lb2 || { rig_fail "cycle $k ($kind): backends not up on both nodes"; rc=1; }
	t1=$(rig_ms)
	line=$(rig_probe_stop chaos-probe)
	out=$(_ha_p "$line" outage_max_ms)
	_ha_num "$out" || out=0
	if [ "$CH_HOLD" = 1 ]; then
		read -r surv of <<<"$(_chaos_hold_check "$k")"
		_ha_num "$surv" || surv=0
		survd[$kind]=$(( ${survd[$kind]:-0} + surv ))
		heldn[$kind]=$(( ${heldn[$kind]:-0} + CHAOS_HOLD ))
	fi
	# Sticky tables: equal on both, nothing of before lost.
	rig_wait 10000 sync_same 1000
	lost=$(_chaos_lost "$before" "$(sync_table lb1)" "$CH_FREE")
	read -r miss wrong <<<"$lost"
	lost=$(( miss + wrong ))
	if ! sync_same 1000; then
		read -r miss wrong <<<"$(sync_lost "$(sync_table lb1)" "$(sync_table lb2)")"
		lost=$(( lost + miss + wrong ))
	fi
	before=$(sync_table "${m2:-lb1}")
	lostk[$kind]=$(( ${lostk[$kind]:-0} + lost ))
	cnt[$kind]=$(( ${cnt[$kind]:-0} + 1 ))
	outs[$kind]="${outs[$kind]:-} $out"
	for n in lb1 lb2; do
		if ! rig_alive "$n-lbd"; then
			rig_fail "cycle $k ($kind): lbd on $n is not running"
			rc=1
			exits[$n]=$(( ${exits[$n]:-0} + 1 ))
			( rig_lb_start "$n" )
		fi
		read -r _ _ pid <<<"$(_chaos_res "$n")"
		read -r _ _ ok <<<"${res0[$n]}"
		[ "$pid" = "$ok" ] || res0[$n]=$(_chaos_res "$n")	# a new process: its own baseline
		resmax[$n]=$(_chaos_res "$n")
	done
	echo "  chaos $k/$total: $kind on $m -> MASTER ${m2:-none}, outage ${out} ms, held $([ "$CH_HOLD" = 1 ] && echo "$surv/$CHAOS_HOLD" || echo -), sticky lost $lost, $(( t1 - CH_T0 )) ms to settle"
	if [ "$CH_HOLD" = 1 ] && [ "$surv" != "$CHAOS_HOLD" ]; then
		rig_fail "cycle $k ($kind): $surv of $CHAOS_HOLD idle mirrored sessions survived: $(grep '"round": 1,' "$RIG_DIR/chaos-h$k.log" | tail -1 | cut -c1-300)"
		rc=1
	fi
	[ "$lost" = 0 ] || { rig_fail "cycle $k ($kind): $lost sticky entries lost"; rc=1; }
	return $rc
}

# Stops the load and checks the run's invariants; prints the table.
# Returns 1 when one failed.
_chaos_end() {
	local rc=0 a v ok n f0 f1 r0 r1 p0 p1 p50 pmax kind left
	local -A an
	touch "$RIG_DIR/chaos.stop"
	_chaos_tl "end - $(rig_ms)"
	rig_wait 20000 eval '! rig_alive chaos-sticky && ! rig_alive chaos-xfer'
	rig_kill chaos-sticky
	rig_kill chaos-xfer
	rig_kill chaos-mon-lb1
	rig_kill chaos-mon-lb2
	while IFS='=' read -r a v; do an[$a]=$v; done < <(_chaos_analyse)
	echo "  figure: VIP: ${an[vip_events]:-?} changes on the two eth0; both holding it with both links up ${an[vip_double]:-?} times, longest ${an[vip_double_longest_ms]:-?} ms (after a kill -9, until the stop hook: ${an[vip_double_crash_longest_ms]:-?} ms); too long: ${an[vip_double_bad]:-?} ${an[vip_double_bad_list]:-}"
	rig_assert "never two MASTERs past 2 advert intervals (after a heal): ${an[vip_double_bad]:-?} times" [ "${an[vip_double_bad]:-x}" = 0 ] || rc=1
	echo "  figure: sticky clients: ${an[sticky_clients]:-?} clients, ${an[sticky_sessions]:-?} sessions, ${an[sticky_ok]:-?} ok; moved to another server ${an[sticky_moves]:-?} times, ${an[sticky_bad_moves]:-?} without their server stopped ${an[sticky_bad_list]:-}"
	rig_assert "each sticky client's next session lands on its server (${an[sticky_bad_moves]:-?} moves without a cause)" [ "${an[sticky_bad_moves]:-x}" = 0 ] || rc=1
	ok=$(awk '$2 == 0' "$RIG_DIR/chaos-xfer.log" | wc -l)
	n=$(grep -c . "$RIG_DIR/chaos-xfer.log")
	echo "  figure: download loop: $ok of $n downloads of 4 MiB complete (one cut by a failover fails: data ports are not mirrored here)"
	for n in lb1 lb2; do
		read -r f0 r0 p0 <<<"${res0[$n]}"
		read -r f1 r1 p1 <<<"${resmax[$n]}"
		echo "  figure: $n lbd (pid $p1): fds $f0 -> $f1, RSS $r0 -> $r1 kB over its life in the run; unexpected exits ${exits[$n]:-0}"
		rig_assert "$n: fds grow by at most $CHAOS_FD_GROWTH ($f0 -> $f1)" [ $(( f1 - f0 )) -le "$CHAOS_FD_GROWTH" ] || rc=1
		rig_assert "$n: RSS grows by at most $CHAOS_RSS_GROWTH_KB kB ($r0 -> $r1)" [ $(( r1 - r0 )) -le "$CHAOS_RSS_GROWTH_KB" ] || rc=1
	done
	printf '  %-12s %5s %9s %9s %9s %7s\n' fault count "p50 ms" "max ms" survived lost
	for kind in $CHAOS_KINDS; do
		[ -n "${cnt[$kind]:-}" ] || continue
		read -r p50 pmax <<<"$(tr ' ' '\n' <<<"${outs[$kind]}" | grep . | sort -n |
			awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[NR] }')"
		printf '  %-12s %5s %9s %9s %9s %7s\n' "$kind" "${cnt[$kind]}" "$p50" "$pmax" \
			"$([ -n "${heldn[$kind]:-}" ] && echo "${survd[$kind]}/${heldn[$kind]}" || echo -)" "${lostk[$kind]}"
	done
	# Nothing left behind by a clean stop.
	for n in lb1 lb2; do
		_chaos_down "$n" TERM
		left=$(rig_exec "$n" nft list tables 2>/dev/null | grep lbd)
		_rig_vip_on "$n" && left="$left VIP on eth0"
		rig_exec "$n" ip -o addr show dev lo | grep -q " $RIG_VIP/" && left="$left VIP on lo"
		[ "$(rig_exec "$n" ip rule show | grep -vc -e 'lookup local' -e 'lookup main' -e 'lookup default')" = 0 ] ||
			left="$left ip rules: $(rig_exec "$n" ip rule show | tr '\n' ';')"
		rig_assert "$n after a clean stop: nothing left (${left:-no nft table, no VIP, no rule})" [ -z "$left" ] || rc=1
	done
	rig_lb_start lb1
	rig_lb_wait_ready lb1
	rig_lb_start lb2
	rig_lb_wait_ready lb2 novip
	return $rc
}

drill_chaos() {
	local seed=${CHAOS_SEED:-$(( $(date +%s%N) % 1000000 ))} kinds k r=0 before
	local CHAOS_CYCLES=${CHAOS_CYCLES:-100}
	# A sparser probe: the load and the faults share the rig's 2 CPUs with it.
	local RIG_PROBE_INTERVAL_MS=50
	local -A cnt outs survd heldn lostk res0 resmax exits
	read -ra kinds <<<"$CHAOS_KINDS"
	RANDOM=$seed
	echo "  figure: chaos seed $seed, $CHAOS_CYCLES cycles, kinds: ${kinds[*]} (replay: CHAOS_SEED=$seed CHAOS_CYCLES=$CHAOS_CYCLES tests/rig/run-drills chaos)"
	_chaos_begin || return 1
	for ((k = 1; k <= CHAOS_CYCLES; k++)); do
		_chaos_cycle "$k" "${kinds[RANDOM % ${#kinds[@]}]}" "$CHAOS_CYCLES" || r=1
		[ $r = 0 ] || [ "${CHAOS_KEEP_GOING:-0}" = 1 ] || break
	done
	_chaos_end || r=1
	echo "  figure: chaos seed $seed: $([ $r = 0 ] && echo passed || echo FAILED)"
	return $r
}

# ---------------------------------------------------------------- soak

# `make soak` (not in check): the chaos load for SOAK_MIN minutes with one
# fault every SOAK_FAULT_S seconds, sampled every SOAK_SAMPLE_S seconds;
# writes build/soak/soak-STAMP.{csv,png} (gnuplot: connections/s, sticky
# session latency p99, RSS and fds of both nodes, the faults marked) and
# prints the chaos table beside the samples' summary.
SOAK_MIN=${SOAK_MIN:-30}
SOAK_FAULT_S=${SOAK_FAULT_S:-180}
SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-5}

# Connections both nodes accepted so far (services[0].total of each).
_soak_total() {
	local n t sum=0
	for n in lb1 lb2; do
		t=$(rig_sval "$(rig_status "$n")" services.0.total)
		_ha_num "$t" && sum=$((sum + t))
	done
	echo "$sum"
}

# p99 (ms) of the sticky sessions that ended in (FROM_MS, TO_MS], "" none
# (plain POSIX awk: mawk has no asort).
_soak_p99() {
	awk -v a="$1" -v b="$2" '
	match($0, /"t1": [0-9]+/) { t1 = substr($0, RSTART + 6, RLENGTH - 6) + 0 }
	/"server": "/ && t1 > a && t1 <= b && match($0, /"t0": [0-9]+/) {
		print t1 - substr($0, RSTART + 6, RLENGTH - 6)
	}' "$RIG_DIR/chaos-sticky.log" | sort -n |
		awk '{ d[NR] = $1 } END { if (NR) { i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; print d[i] } }'
}

drill_soak() {
	local seed=${CHAOS_SEED:-$(( $(date +%s%N) % 1000000 ))} kinds k=0 r=0 before
	local RIG_PROBE_INTERVAL_MS=50
	local -A cnt outs survd heldn lostk res0 resmax exits
	local t0 tend tnext tprev now tot totprev csv out stamp f1 r1 f2 r2 p99 cps
	read -ra kinds <<<"$CHAOS_KINDS"
	RANDOM=$seed
	echo "  figure: soak seed $seed, $SOAK_MIN min, a fault every $SOAK_FAULT_S s, samples every $SOAK_SAMPLE_S s"
	_chaos_begin || return 1
	csv=$RIG_DIR/soak.csv
	echo "t_s,conn_per_s,p99_ms,lb1_rss_kb,lb1_fds,lb2_rss_kb,lb2_fds" >"$csv"
	: >"$RIG_DIR/soak-faults.csv"
	t0=$(rig_ms)
	tend=$((t0 + SOAK_MIN * 60000))
	tnext=$((t0 + SOAK_FAULT_S * 1000))
	tprev=$t0
	totprev=$(_soak_total)
	while now=$(rig_ms); ((now < tend)); do
		sleep "$SOAK_SAMPLE_S"
		now=$(rig_ms)
		tot=$(_soak_total)
		cps=$(awk -v d="$((tot - totprev))" -v t="$((now - tprev))" 'BEGIN { printf "%.1f", (t > 0 ? d * 1000 / t : 0) }')
		p99=$(_soak_p99 "$tprev" "$now")
		read -r f1 r1 _ <<<"$(_chaos_res lb1)"
		read -r f2 r2 _ <<<"$(_chaos_res lb2)"
		echo "$(( (now - t0) / 1000 )),$cps,$p99,$r1,$f1,$r2,$f2" >>"$csv"
		tprev=$now
		totprev=$tot
		if ((now >= tnext)); then
			k=$((k + 1))
			kind=${kinds[RANDOM % ${#kinds[@]}]}
			echo "$(( (now - t0) / 1000 )),$kind" >>"$RIG_DIR/soak-faults.csv"
			_chaos_cycle "$k" "$kind" "soak" || r=1
			tnext=$(( $(rig_ms) + SOAK_FAULT_S * 1000 ))
			tprev=$(rig_ms)
			totprev=$(_soak_total)
		fi
	done
	_chaos_end || r=1
	awk -F, 'NR > 1 { n++; c += $2; if ($3 != "" && $3 > pm) pm = $3 }
		END { printf "  figure: soak samples: %d, connections/s mean %.1f, sticky session p99 max %s ms\n", n, n ? c / n : 0, pm + 0 }' "$csv"
	stamp=$(date +%Y%m%d-%H%M%S)
	out=$RIG_TOP/build/soak
	mkdir -p "$out"
	cp "$csv" "$out/soak-$stamp.csv"
	cp "$RIG_DIR/soak-faults.csv" "$out/soak-$stamp.faults.csv"
	if gnuplot - <<GP 2>"$RIG_DIR/gnuplot.err"; then
set terminal pngcairo size 1200,1000
set output "$out/soak-$stamp.png"
set datafile separator ","
set key top left
set xlabel "seconds"
set multiplot layout 4,1 title "lbd soak: $SOAK_MIN min, a fault every $SOAK_FAULT_S s (seed $seed)"
$(awk -F, '{ printf "set arrow from %s, graph 0 to %s, graph 1 nohead lc rgb \"red\" dt 2\nset label \"%s\" at %s, graph 0.95 rotate by 90 right font \",8\" tc rgb \"red\"\n", $1, $1, $2, $1 }' "$RIG_DIR/soak-faults.csv")
set ylabel "connections/s"
plot "$csv" using 1:2 with lines title "both nodes"
set ylabel "p99 ms"
plot "$csv" using 1:3 with lines title "sticky FTPS session p99"
set ylabel "RSS kB"
plot "$csv" using 1:4 with lines title "lb1", "" using 1:6 with lines title "lb2"
set ylabel "fds"
plot "$csv" using 1:5 with lines title "lb1", "" using 1:7 with lines title "lb2"
unset multiplot
GP
		echo "  figure: soak plot: $out/soak-$stamp.png (data $out/soak-$stamp.csv)"
	else
		rig_fail "gnuplot failed: $(head -3 "$RIG_DIR/gnuplot.err")"
		r=1
	fi
	echo "  figure: soak seed $seed: $([ $r = 0 ] && echo passed || echo FAILED)"
	return $r
}
