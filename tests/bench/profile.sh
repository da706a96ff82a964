#!/bin/bash
# profile.sh - a small, quick side of `make bench` for working on lbd's
# data path: one namespace rig (tests/rig/lib.sh: c1, lb1, ftp1, ftp2),
# `loadgen rr-server` on both real servers, then, per round, lbd
# standalone with the rig's config (as tests/bench/run's lbd column) and
# HAProxy with the bench's "best" config (splice both ways, 1 MiB pipes),
# each started fresh and measured with `loadgen rr` from c1: -c 64 for
# connections/s, -c 1 for latency.  Prints every run and the medians.
#
#   tests/bench/profile.sh                        # 3 rounds, lbd vs HAProxy best
#   PROF_ROUNDS=1 PROF_SECS=3 tests/bench/profile.sh
#   PROF_LBD="old:/tmp/lbd.old new:build/lbd" tests/bench/profile.sh
#                                                 # several lbd binaries, same run
#   PROF_LBD="t0:build/lbd:0 t1:build/lbd:1 t2:build/lbd:2" tests/bench/profile.sh
#                                                 # NAME:BINARY:THREADS sets node.relay_threads
#                                                 # (else RIG_RELAY_THREADS, else lbd's default)
#   PROF_TOOL=strace tests/bench/profile.sh       # + syscalls per connection
#   PROF_TOOL=perf tests/bench/profile.sh         # + perf record -g of the proxy
#   PROF_TOOL=stat tests/bench/profile.sh         # + perf stat (task-clock, switches)
#   PROF_TOOL=machine tests/bench/profile.sh      # + where the whole machine's CPU goes
#                                                 # (perf record -a): proxy, client, real
#                                                 # servers, idle-time softirq, each in user
#                                                 # and kernel; the direct path too
#   PROF_HAP=0 tests/bench/profile.sh             # lbd only
#   PROF_HAP_THREADS=1 tests/bench/profile.sh     # HAProxy on one thread, as lbd
#   PROF_MODE=thr tests/bench/profile.sh          # throughput instead: one iperf3
#                                                 # stream c1 -> VIP:1030 per run, Gbit/s
#                                                 # and the machine's CPU %/Gbit (PROF_TOOL
#                                                 # strace/perf/stat trace such a run)
#
# With PROF_TOOL set, one extra rr -c 64 run per proxy (after the measured
# rounds, so the figures above are not slowed) is traced; reports go to
# PROF_OUT (default /tmp/lbdprof), perf data as PROF_OUT/<name>.perf.data.

PROF_HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../rig/lib.sh
. "$PROF_HERE/../rig/lib.sh"
# loadgen stands for many clients from one address: no per-client cap.
RIG_MAX_CONN_PER_CLIENT=${RIG_MAX_CONN_PER_CLIENT:-0}

PROF_ROUNDS=${PROF_ROUNDS:-3}		# rounds (median over them)
PROF_SECS=${PROF_SECS:-5}		# seconds of rr -c PROF_CONC per run
PROF_CONC=${PROF_CONC:-64}		# concurrent loops for connections/s
PROF_LAT_SECS=${PROF_LAT_SECS:-2}	# seconds of rr -c 1 per run
PROF_LBD=${PROF_LBD:-"lbd:$RIG_TOP/build/lbd"}	# NAME:BINARY[:RELAY_THREADS] ...
PROF_HAP=${PROF_HAP:-1}			# 1: also HAProxy best
PROF_HAP_THREADS=${PROF_HAP_THREADS:-}	# HAProxy nbthread (default: one per CPU)
PROF_TOOL=${PROF_TOOL:-}		# strace, perf, stat, util or machine
PROF_OUT=${PROF_OUT:-/tmp/lbdprof}	# where profiles go
PROF_MODE=${PROF_MODE:-rr}		# rr (connections/s, latency) or thr (iperf3)
PROF_PORT=1031				# rr-server port (as the bench)
PROF_PORT_THR=1030			# iperf3 server port (as the bench)
PROF_LOADGEN=$RIG_TOP/build/bench/loadgen

declare -A RUN	# RUN[col|metric] = " v1 v2 ..."
PROF_COLS=()

prof_median() {
	printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print v[int(NR / 2) + 1]; else print "-" }'
}

PROF_DST=			# where the load goes: the VIP (empty) or a real server (direct)

# One loadgen rr from c1 to the VIP: CONC SECS; prints its "rr:" line.
prof_rr() {
	rig_exec c1 timeout $(($2 + 10)) "$PROF_LOADGEN" rr -a "${PROF_DST:-$RIG_VIP}" -p $PROF_PORT -c "$1" -d "$2" 2>&1 |
		grep '^rr:'
}

# Busy and total jiffies of the whole machine (/proc/stat).
prof_jiffies() {
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# One iperf3 stream from c1 to the VIP for SECS; prints "thr: gbits=G busy=B"
# (B: % of one CPU summed over the CPUs, from 1 s in to 1 s before the end).
prof_thr() {
	local out="$RIG_DIR/prof-iperf.out" pid a b g
	rig_exec c1 timeout $(($1 + 15)) iperf3 -c "${PROF_DST:-$RIG_VIP}" -p $PROF_PORT_THR -t "$1" -f m >"$out" 2>&1 &
	pid=$!
	sleep 1
	a=$(prof_jiffies)
	sleep $(($1 > 2 ? $1 - 2 : 1))
	b=$(prof_jiffies)
	wait "$pid"
	g=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") printf "%.2f\n", $(i - 1) / 1000 }' "$out")
	echo "thr: gbits=${g:-fail} busy=$(echo "$a $b $(nproc)" | awk '$4 > $2 { printf "%d", 100 * $5 * ($3 - $1) / ($4 - $2) }')"
}

# One measured run of the current mode; prints its summary line.
prof_load() {
	if [ "$PROF_MODE" = thr ]; then prof_thr "$PROF_SECS"; else prof_rr "$PROF_CONC" "$PROF_SECS"; fi
}

# Measures column COL once (the proxy is up): cps, then p50/p99 of one loop
# (PROF_MODE=thr: Gbit/s and machine CPU per Gbit/s).
prof_measure() {
	local col=$1 l1 l2 g b
	if [ "$PROF_MODE" = thr ]; then
		l1=$(prof_thr "$PROF_SECS")
		g=$(rig_pval "$l1" gbits)
		b=$(rig_pval "$l1" busy)
		RUN[$col|cps]+=" $g"
		[[ $g =~ ^[0-9.]+$ ]] && [[ $b =~ ^[0-9]+$ ]] &&
			RUN[$col|p50]+=" $(awk -v b="$b" -v g="$g" 'BEGIN { printf "%.1f", b / g }')"
		printf '   %-8s %s Gbit/s (machine %s %% busy)\n' "$col" "$g" "$b"
		return
	fi
	l1=$(prof_rr "$PROF_CONC" "$PROF_SECS")
	l2=$(prof_rr 1 "$PROF_LAT_SECS")
	RUN[$col|cps]+=" $(rig_pval "$l1" cps)"
	RUN[$col|c64p50]+=" $(rig_pval "$l1" p50_us)"
	RUN[$col|c64p99]+=" $(rig_pval "$l1" p99_us)"
	RUN[$col|p50]+=" $(rig_pval "$l2" p50_us)"
	RUN[$col|p99]+=" $(rig_pval "$l2" p99_us)"
	printf '   %-8s cps=%s failed=%s (x%s p50=%s p99=%s) | x1: p50=%s us p99=%s us\n' "$col" \
		"$(rig_pval "$l1" cps)" "$(rig_pval "$l1" failed)" "$PROF_CONC" "$(rig_pval "$l1" p50_us)" \
		"$(rig_pval "$l1" p99_us)" "$(rig_pval "$l2" p50_us)" "$(rig_pval "$l2" p99_us)"
}

# Traces process PID (proxy column COL) during one extra rr -c PROF_CONC run.
prof_trace() {
	local col=$1 pid=$2 line tp n unit
	mkdir -p "$PROF_OUT"
	case $PROF_TOOL in
	strace)
		# Every thread (HAProxy runs one per CPU).
		timeout $((PROF_SECS + 20)) strace -c -f -o "$PROF_OUT/$col.strace" \
			-p "$(ls "/proc/$pid/task" | paste -sd,)" &
		tp=$!
		sleep 0.5
		line=$(prof_load)
		kill -INT "$tp" 2>/dev/null; wait "$tp" 2>/dev/null
		n=$(rig_pval "$line" conns)
		unit=connection
		if [ "$PROF_MODE" = thr ]; then	# per GB moved
			n=$(awk -v g="$(rig_pval "$line" gbits)" -v s="$PROF_SECS" 'BEGIN { printf "%.3f", g * s / 8 }')
			unit=GB
		fi
		echo "   $col traced: $line"
		echo "   $col syscalls per $unit (strace -c, $n ${unit}s; strace slows the proxy):"
		# Rows: % time, seconds, usecs/call, calls, [errors], syscall.
		awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" {
			printf "     %-16s %8.2f\n", $NF, $4 / n }' "$PROF_OUT/$col.strace" | sort -k2 -gr
		awk -v n="$n" '$NF == "total" { printf "     %-16s %8.2f\n", "TOTAL", $4 / n }' "$PROF_OUT/$col.strace"
		;;
	perf)
		perf record -F 4999 -g -o "$PROF_OUT/$col.perf.data" -p "$pid" -- sleep "$PROF_SECS" \
			>/dev/null 2>&1 &
		tp=$!
		line=$(prof_load)
		wait "$tp"
		echo "   $col recorded: $line"
		perf report -i "$PROF_OUT/$col.perf.data" --no-children --sort sym --stdio 2>/dev/null |
			grep -E '^ +[0-9]' | head -40 >"$PROF_OUT/$col.top"
		sed 's/^/     /' "$PROF_OUT/$col.top" | head -25
		;;
	util)
		# The proxy's CPU (all threads, of one CPU) and the machine's idle share.
		local st0 st1 t0 t1
		read -r _ st0 < /proc/stat
		t0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
		line=$(prof_load)
		read -r _ st1 < /proc/stat
		t1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
		echo "   $col: $line"
		awk -v a="$st0" -v b="$st1" -v t="$((t1 - t0))" -v n="$(rig_pval "$line" conns)" 'BEGIN {
			split(a, x, " "); split(b, y, " "); for (i = 1; i <= 8; i++) { d[i] = y[i] - x[i]; tot += d[i] }
			printf "     proxy CPU %.0f%% of one CPU (%.1f us per connection); machine: idle %.0f%%, softirq %.0f%%, steal %.0f%%\n",
				t * 100 / (tot / 2), t * 10000 / n, d[4] * 100 / tot, d[7] * 100 / tot, d[8] * 100 / tot }'
		;;
	machine)
		prof_machine "$col" "$pid"
		;;
	stat)
		perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$pid" \
			-o "$PROF_OUT/$col.stat" -- sleep "$PROF_SECS" &
		tp=$!
		line=$(prof_load)
		wait "$tp"
		n=$(rig_pval "$line" conns)
		echo "   $col: $line"
		awk -v n="$n" '/task-clock|context-switches|page-faults/ {
			gsub(",", "", $1); printf "     %-18s %12s  (%.2f per connection)\n", $2, $1, $1 / n }' \
			"$PROF_OUT/$col.stat"
		;;
	esac
}

# PROF_TOOL=machine: perf record -a (every CPU, idle included) during one
# run of the load for column COL (proxy PID; none for the direct path),
# then the machine's CPU split by who ran (proxy, client, real servers,
# softirq = what the idle task ran besides idling, other) and where (user
# code or kernel), per connection (us) or per Gbit/s (% of one CPU), as
# prof_measure's figures; "idle" is the CPU left.
prof_machine() {
	local col=$1 pid=$2 tp line n unit srv="" s
	for s in ftp1-rr ftp2-rr ftp1-iperf ftp2-iperf; do srv+=" $(rig_pid "$s")"; done
	perf record -a -F 999 -o "$PROF_OUT/$col.machine.data" -- sleep "$PROF_SECS" >/dev/null 2>&1 &
	tp=$!
	line=$(prof_load)
	wait "$tp"
	if [ "$PROF_MODE" = thr ]; then
		n=$(rig_pval "$line" gbits); unit="% of one CPU per Gbit/s"
	else
		n=$(rig_pval "$line" cps); unit="us per connection"
	fi
	echo "   $col: $line"
	echo "     machine CPU by who and where, $unit (perf record -a, $(nproc) CPUs, ${PROF_SECS} s):"
	perf report -i "$PROF_OUT/$col.machine.data" --stdio --sort pid,dso,sym -g none 2>/dev/null |
		awk -v proxy="${pid:-none}" -v srv="$srv" -v n="$n" -v cpus="$(nproc)" -v thr="$([ "$PROF_MODE" = thr ] && echo 1)" '
		BEGIN { split(srv, a, " "); for (i in a) isrv[a[i]] = 1 }
		$1 ~ /%$/ && $2 ~ /:/ {
			pct = $1; sub("%", "", pct); split($2, t, ":"); tid = t[1]; comm = t[2]
			who = "other"
			if (comm ~ /^(lbd|haproxy)/) who = "proxy"
			else if (tid in isrv) who = "servers"
			else if (comm ~ /^(loadgen|iperf3)/) who = "client"
			else if (comm ~ /^swapper/) who = ($0 ~ /halt|idle|mwait/) ? "idle" : "softirq"
			where = ($3 ~ /kernel|\[k\]/) ? "kernel" : "user"
			v[who "|" where] += pct; tot[where] += pct
		}
		END {
			if (n + 0 <= 0) { print "     no figure to divide by"; exit }
			# pct of all samples -> % of one CPU -> per unit
			f = cpus / n; if (!thr) f = cpus * 10000 / n
			printf "     %-14s %10s %10s\n", "", "user", "kernel"
			split("proxy client servers softirq other", order, " ")
			for (i = 1; i <= 5; i++) { w = order[i]
				printf "     %-14s %10.1f %10.1f\n", w, v[w "|user"] * f, v[w "|kernel"] * f }
			printf "     %-14s %10.1f %10.1f\n", "busy", tot["user"] * f,
			    (tot["kernel"] - v["idle|kernel"]) * f
			printf "     %-14s %10s %10.1f\n", "idle", "", v["idle|kernel"] * f
		}'
}

prof_vip_del() { rig_exec lb1 ip addr del "$RIG_VIP/$RIG_PLEN" dev eth0 2>/dev/null; true; }

# The BINARY and RELAY_THREADS (may be empty) of a PROF_LBD entry NAME:BINARY[:RELAY_THREADS].
prof_spec_bin() { local r=${1#*:}; echo "${r%%:*}"; }
prof_spec_threads() { local r=${1#*:}; [[ $r == *:* ]] && echo "${r#*:}"; true; }

# lbd binary BIN standalone on lb1 with the rig's (= the bench's) config,
# node.relay_threads THREADS when given.
prof_lbd_up() {
	RIG_LBD=$1
	RIG_RELAY_THREADS=${2:-$RIG_RELAY_THREADS} rig_lb_conf lb1
	rig_lb_start lb1
	rig_lb_wait_ready lb1
}

prof_lbd_down() { rig_lb_stop lb1; prof_vip_del; }

# HAProxy with tests/bench/run's "best" configuration (bench_hap_conf best).
prof_hap_up() {
	cat >"$RIG_DIR/hap-lb1.cfg" <<EOF
# HAProxy best configuration of tests/bench/run, for tests/bench/profile.sh.
global
  maxconn 7000
  stats socket $RIG_DIR/hap-lb1.sock level admin
  tune.pipesize 1048576
${PROF_HAP_THREADS:+  nbthread $PROF_HAP_THREADS}
defaults
  mode tcp
  maxconn 7000
  timeout connect 3s
  timeout client ${RIG_IDLE_TIMEOUT_S}s
  timeout server ${RIG_IDLE_TIMEOUT_S}s
peers lbpeers
  peer lb1 ${RIG_ADDR[lb1]}:7413
  peer lb2 ${RIG_ADDR[lb2]}:7413
listen $RIG_SERVICE
  bind $RIG_VIP:21
  bind $RIG_VIP:990
  bind $RIG_VIP:1025-1052
  balance leastconn
  stick-table type ip size 2m expire 30m peers lbpeers
  stick on src
  option splice-request
  option splice-response
  server FTP_SVR1 ${RIG_ADDR[ftp1]} check port 21 inter ${RIG_CHECK_INTERVAL_MS} rise $RIG_CHECK_RISE fall $RIG_CHECK_FALL
  server FTP_SVR2 ${RIG_ADDR[ftp2]} check port 21 inter ${RIG_CHECK_INTERVAL_MS} rise $RIG_CHECK_RISE fall $RIG_CHECK_FALL
EOF
	rig_exec lb1 ip addr add "$RIG_VIP/$RIG_PLEN" dev eth0 2>/dev/null
	rig_bg lb1 lb1-haproxy "$RIG_DIR/hap-lb1.log" haproxy -db -L lb1 -f "$RIG_DIR/hap-lb1.cfg"
	rig_wait 5000 rig_port_open c1 "$RIG_VIP" $PROF_PORT || rig_die "haproxy did not start"
	sleep 1.5	# health checks: rise 2 at 500 ms
}

prof_hap_down() { rig_kill lb1-haproxy TERM; prof_vip_del; }

# ------------------------------------------------------------ main

case $PROF_TOOL in
perf | stat | machine) command -v perf >/dev/null || rig_die "PROF_TOOL=$PROF_TOOL needs perf (apt-get install linux-perf)" ;;
strace) command -v strace >/dev/null || rig_die "PROF_TOOL=strace needs strace (apt-get install strace)" ;;
"" | util) ;;
*) rig_die "unknown PROF_TOOL=$PROF_TOOL (strace, perf, stat, util or machine)" ;;
esac
command -v haproxy >/dev/null || PROF_HAP=0
[ -x "$PROF_LOADGEN" ] || make -C "$RIG_TOP" bench-tools >/dev/null || rig_die "make bench-tools failed"
for spec in $PROF_LBD; do
	[ -x "$(prof_spec_bin "$spec")" ] || rig_die "no lbd binary $(prof_spec_bin "$spec")"
	PROF_COLS+=("${spec%%:*}")
done
[ "$PROF_HAP" = 1 ] && PROF_COLS+=(hap)

RIG_LB_NODES=lb1
RIG_LBD_ARGS=" "		# no debug logging, as the bench
RIG_NO_LBD=1
RIG_BIG_MIB=1
rig_up 1
rig_exec c1 sysctl -qw net.ipv4.ip_local_port_range="10000 64999"
rig_exec c1 sysctl -qw net.ipv4.tcp_tw_reuse=1
rig_exec lb1 sysctl -qw net.ipv4.ip_local_port_range="10000 64999"
rig_exec lb1 sysctl -qw net.ipv4.ip_nonlocal_bind=1
for n in ftp1 ftp2; do
	rig_bg "$n" "$n-rr" "$RIG_DIR/$n-rr.log" "$PROF_LOADGEN" rr-server -a "${RIG_ADDR[$n]}" -p $PROF_PORT -d 3600
	rig_wait 5000 rig_port_open "$n" "${RIG_ADDR[$n]}" $PROF_PORT || rig_die "rr-server on $n did not start"
	if [ "$PROF_MODE" = thr ]; then
		rig_bg "$n" "$n-iperf" "$RIG_DIR/$n-iperf.log" iperf3 -s -B "${RIG_ADDR[$n]}" -p $PROF_PORT_THR
		rig_wait 5000 rig_port_open "$n" "${RIG_ADDR[$n]}" $PROF_PORT_THR || rig_die "iperf3 -s on $n did not start"
	fi
done
rig_log "rig $RIG_PREFIX up; ${PROF_ROUNDS} rounds of ${PROF_SECS} s x${PROF_CONC} + ${PROF_LAT_SECS} s x1; columns ${PROF_COLS[*]}"

for ((round = 1; round <= PROF_ROUNDS; round++)); do
	rig_step "round $round of $PROF_ROUNDS"
	for spec in $PROF_LBD; do
		prof_lbd_up "$(prof_spec_bin "$spec")" "$(prof_spec_threads "$spec")"
		prof_measure "${spec%%:*}"
		prof_lbd_down
	done
	if [ "$PROF_HAP" = 1 ]; then
		prof_hap_up
		prof_measure hap
		prof_hap_down
	fi
done

rig_step "medians of $PROF_ROUNDS rounds"
if [ "$PROF_MODE" = thr ]; then
	printf '   %-8s %8s %8s %10s\n' column Gbit/s ratio "CPU %/Gbit"
else
	printf '   %-8s %8s %8s %10s %10s %10s %10s\n' column conn/s ratio "x1 p50 us" "x1 p99 us" "x64 p50" "x64 p99"
fi
hcps=$(prof_median ${RUN[hap|cps]})
for col in "${PROF_COLS[@]}"; do
	# shellcheck disable=SC2086
	c=$(prof_median ${RUN[$col|cps]})
	r=-
	[[ $hcps =~ ^[0-9.]+$ ]] && [[ $c =~ ^[0-9.]+$ ]] && r=$(awk -v a="$c" -v b="$hcps" 'BEGIN { printf "%.2fx", a / b }')
	if [ "$PROF_MODE" = thr ]; then
		# shellcheck disable=SC2086
		printf '   %-8s %8s %8s %10s\n' "$col" "$c" "$r" "$(prof_median ${RUN[$col|p50]})"
		continue
	fi
	# shellcheck disable=SC2086
	printf '   %-8s %8s %8s %10s %10s %10s %10s\n' "$col" "$c" "$r" "$(prof_median ${RUN[$col|p50]})" \
		"$(prof_median ${RUN[$col|p99]})" "$(prof_median ${RUN[$col|c64p50]})" "$(prof_median ${RUN[$col|c64p99]})"
done

if [ -n "$PROF_TOOL" ]; then
	rig_step "profile: $PROF_TOOL"
	for spec in $PROF_LBD; do
		prof_lbd_up "$(prof_spec_bin "$spec")" "$(prof_spec_threads "$spec")"
		prof_trace "${spec%%:*}" "$(rig_lb_pid lb1)"
		prof_lbd_down
	done
	if [ "$PROF_HAP" = 1 ]; then
		prof_hap_up
		prof_trace hap "$(rig_pid lb1-haproxy)"
		prof_hap_down
	fi
	if [ "$PROF_TOOL" = machine ]; then	# the same load without a proxy
		PROF_DST=${RIG_ADDR[ftp1]}
		prof_trace direct ""
		PROF_DST=
	fi
fi
