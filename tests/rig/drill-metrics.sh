# drill-metrics.sh - GET /metrics on lb1's own loopback (the rig's config
# enables metrics on $RIG_METRICS_LISTEN) agrees with `lbctl --json status`:
# role, VIP, each backend's up and connections_total, sticky entries, the
# pipe memory budget. Then slow and greedy clients (slowclients.py): 60
# metrics clients trickling a byte a second hold at most 32 slots, are
# closed at the 5 s deadline, and a scrape that comes once they hold every
# slot is served; 20 monitors leave `status` answering; a control client
# trickling "status" without a newline is closed at its deadline.

# Value of the series NAME{LABELS} (exact label text) in the scrape $1.
_metrics_val() {
	awk -v k="$2" 'index($0, k " ") == 1 { print substr($0, length(k) + 2); exit }' <<<"$1"
}

# Value of KEY in slowclients.py's "key value" output $1.
_slow_val() { awk -v k="$2" '$1 == k { print $2; exit }' <<<"$1"; }

_metrics_slow() {
	local out flat v
	# 60 x (5 s, then the backlog's 5 s) plus slack; bounded by LIMIT_S 16 and timeout.
	out=$(rig_exec lb1 timeout 40 python3 "$RIG_SRC/slowclients.py" "$RIG_METRICS_LISTEN" \
		"$(rig_sock lb1)" 60 20 1 16) || { rig_fail "slowclients.py failed"; return 1; }
	sed 's/^/  figure: /' <<<"$out"
	v=$(_slow_val "$out" metrics_slow_closed)
	rig_assert "60 slow metrics clients all closed (got $v)" [ "$v" = 60 ] || return 1
	v=$(_slow_val "$out" metrics_slow_first_close_s)
	rig_assert "first slow metrics client closed at its 5 s deadline (${v} s, 4.5-7)" \
		awk -v v="$v" 'BEGIN { exit !(v >= 4.5 && v < 7) }' || return 1
	v=$(_slow_val "$out" metrics_slow_replied)
	rig_assert "no reply to a request never finished (got $v)" [ "$v" = 0 ] || return 1
	v=$(_slow_val "$out" metrics_full_connections)
	rig_assert "the slow clients held all 32 slots, no more (status metrics.connections $v)" \
		[ "$v" = 32 ] || return 1
	v=$(_slow_val "$out" metrics_normal_status)
	rig_assert "a normal scrape behind them -> $v in $(_slow_val "$out" metrics_normal_s) s" \
		[ "$v" = 200 ] || return 1
	v=$(_slow_val "$out" control_monitors_started)
	rig_assert "16 of 20 monitors started (got $v)" [ "$v" = 16 ] || return 1
	v=$(_slow_val "$out" control_monitors_refused)
	rig_assert "4 of 20 monitors refused with an error (got $v)" [ "$v" = 4 ] || return 1
	v=$(_slow_val "$out" control_status_answered)
	rig_assert "status answers with 16 monitors open (in $(_slow_val "$out" control_status_s) s)" \
		[ "$v" = 1 ] || return 1
	v=$(_slow_val "$out" control_slow_closed_s)
	rig_assert "a control client trickling a byte a second is closed at 5 s ($v s, 4.5-7)" \
		eval '[ "$(_slow_val "$out" control_slow_timed_out)" = 1 ] &&
		awk -v v="$v" "BEGIN { exit !(v >= 4.5 && v < 7) }"' || return 1
	flat=$(rig_status lb1)
	echo "  figure: status metrics.timeouts $(rig_sval "$flat" metrics.timeouts)," \
		"metrics.cap_reached $(rig_sval "$flat" metrics.cap_reached)," \
		"control.timeouts $(rig_sval "$flat" control.timeouts)," \
		"control.monitors_refused $(rig_sval "$flat" control.monitors_refused)"
	rig_assert "status metrics.timeouts >= 60, control.timeouts >= 1, control.monitors_refused >= 4" \
		eval '[ "$(rig_sval "$flat" metrics.timeouts)" -ge 60 ] &&
		[ "$(rig_sval "$flat" control.timeouts)" -ge 1 ] &&
		[ "$(rig_sval "$flat" control.monitors_refused)" -ge 4 ] &&
		[ "$(rig_sval "$flat" control.monitors)" = 0 ]' || return 1
	return 0
}

drill_metrics() {
	local i s code body flat n name total up st v url=http://$RIG_METRICS_LISTEN/metrics
	for ((i = 0; i < 3; i++)); do
		s=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
		rig_assert "session $((i + 1)) from c1 -> $s" rig_is_server "$s" || return 1
	done
	s=$(rig_curl c2 implicit "$RIG_VIP" server.txt)
	rig_assert "implicit session from c2 -> $s" rig_is_server "$s" || return 1

	code=$(rig_exec lb1 curl -s --max-time 5 -o "$RIG_DIR/metrics.out" -w '%{http_code}' "$url")
	flat=$(rig_status lb1)
	body=$(cat "$RIG_DIR/metrics.out")
	echo "  figure: GET $url in lb1's namespace: HTTP $code, $(wc -l <"$RIG_DIR/metrics.out") lines, $(grep -c '^# TYPE' "$RIG_DIR/metrics.out") families"
	rig_assert "GET /metrics -> 200" [ "$code" = 200 ] || return 1
	v=$(rig_exec lb1 curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$RIG_METRICS_LISTEN/nope")
	rig_assert "GET /nope -> 404 (got $v)" [ "$v" = 404 ] || return 1

	rig_assert "status role MASTER, metrics lbd_role{role=\"MASTER\"} = $(_metrics_val "$body" 'lbd_role{role="MASTER"}')" \
		eval '[ "$(rig_sval "$flat" role)" = MASTER ] && [ "$(_metrics_val "$body" "lbd_role{role=\"MASTER\"}")" = 1 ]' || return 1
	rig_assert "status vip.held $(rig_sval "$flat" vip.held), lbd_vip_held $(_metrics_val "$body" lbd_vip_held)" \
		eval '[ "$(rig_sval "$flat" vip.held)" = true ] && [ "$(_metrics_val "$body" lbd_vip_held)" = 1 ]' || return 1

	n=0
	for ((i = 0; ; i++)); do
		name=$(rig_sval "$flat" "services.0.backends.$i.name")
		[ -n "$name" ] || break
		n=$((n + 1))
		total=$(rig_sval "$flat" "services.0.backends.$i.total")
		st=$(rig_sval "$flat" "services.0.backends.$i.state")
		[ "$st" = up ] && up=1 || up=0
		local lab="{service=\"$RIG_SERVICE\",backend=\"$name\"}"
		v=$(_metrics_val "$body" "lbd_backend_connections_total$lab")
		echo "  figure: $name: status total $total state $st; metrics connections_total $v up $(_metrics_val "$body" "lbd_backend_up$lab")"
		rig_assert "$name lbd_backend_connections_total $v == status total $total" [ "$v" = "$total" ] || return 1
		rig_assert "$name lbd_backend_up == (state $st = up)" \
			[ "$(_metrics_val "$body" "lbd_backend_up$lab")" = "$up" ] || return 1
	done
	rig_assert "status lists $n backends (>= 2)" [ "$n" -ge 2 ] || return 1
	total=$(rig_sval "$flat" services.0.total)
	v=$(_metrics_val "$body" "lbd_service_connections_total{service=\"$RIG_SERVICE\"}")
	rig_assert "lbd_service_connections_total $v == status total $total (>= 4)" \
		eval '[ "$v" = "$total" ] && [ "$total" -ge 4 ]' || return 1
	st=$(rig_sval "$flat" services.0.sticky_entries)
	v=$(_metrics_val "$body" "lbd_sticky_entries{service=\"$RIG_SERVICE\"}")
	rig_assert "lbd_sticky_entries $v == status sticky_entries $st (2 clients)" \
		eval '[ "$v" = "$st" ] && [ "$st" = 2 ]' || return 1
	# The pipe memory budget (node.pipe_memory_max_mb): a few transfers stay
	# well inside the default, and the metrics say what status says.
	local pmax pbytes pfall
	pmax=$(rig_sval "$flat" pipes.max)
	pbytes=$(rig_sval "$flat" pipes.bytes)
	pfall=$(rig_sval "$flat" pipes.fallbacks)
	echo "  figure: pipes: $pbytes of $pmax bytes held, peak $(rig_sval "$flat" pipes.peak), $pfall fallbacks, $(rig_sval "$flat" pipes.refused) refused"
	rig_assert "lbd_pipe_memory_max_bytes $(_metrics_val "$body" lbd_pipe_memory_max_bytes) == status pipes.max $pmax (> 0)" \
		eval '[ "$(_metrics_val "$body" lbd_pipe_memory_max_bytes)" = "$pmax" ] && [ "$pmax" -gt 0 ]' || return 1
	rig_assert "lbd_pipe_fallbacks_total $(_metrics_val "$body" lbd_pipe_fallbacks_total) == status pipes.fallbacks $pfall" \
		[ "$(_metrics_val "$body" lbd_pipe_fallbacks_total)" = "$pfall" ] || return 1
	rig_assert "status pipes.bytes $pbytes <= pipes.max $pmax" [ "$pbytes" -le "$pmax" ] || return 1
	rm -f "$RIG_DIR/metrics.out"
	_metrics_slow || return 1
	return 0
}
