# drill-sticky.sh - stickiness across control and data ports: 20 sessions
# from c1 alternating 21 (explicit) and 990 (implicit) all land on one
# server, c2 lands on the other, and `lbctl sticky get` agrees.

# Runs N sessions from NODE (optionally from source address SRC) alternating
# explicit/implicit; prints the server names seen, one per line.
_sticky_sessions() {
	local node=$1 n=$2 src=${3:-} i mode
	local extra=()
	[ -n "$src" ] && extra=(--interface "$src")
	for ((i = 0; i < n; i++)); do
		((i % 2)) && mode=implicit || mode=explicit
		rig_curl "$node" $mode "$RIG_VIP" server.txt "${extra[@]}" || echo "FAILED($mode)"
	done
}

drill_sticky() {
	rig_lbctl lb1 sticky flush >/dev/null
	local c1ip c2ip s1 s2 n1 n2
	c1ip=$(rig_client_ip 1)
	c2ip=$(rig_client_ip 2)
	s1=$(_sticky_sessions c1 20)
	n1=$(sort -u <<<"$s1" | wc -l)
	rig_assert "c1: 20 sessions (21/990 alternating) all on one server: $(sort <<<"$s1" | uniq -c | xargs)" \
		[ "$n1" = 1 ] || return 1
	s1=$(head -1 <<<"$s1")
	rig_assert "c1's server is a real one ($s1)" rig_is_server "$s1" || return 1
	s2=$(_sticky_sessions c2 10)
	n2=$(sort -u <<<"$s2" | wc -l)
	rig_assert "c2: 10 sessions all on one server: $(sort <<<"$s2" | uniq -c | xargs)" \
		[ "$n2" = 1 ] || return 1
	s2=$(head -1 <<<"$s2")
	rig_assert "c2 ($s2) landed on the other server than c1 ($s1): leastconn tie rotation" \
		[ "$s1" != "$s2" ] || return 1
	rig_assert "lbctl sticky get $c1ip == $s1" [ "$(rig_sticky_of lb1 "$c1ip")" = "$s1" ] || return 1
	rig_assert "lbctl sticky get $c2ip == $s2" [ "$(rig_sticky_of lb1 "$c2ip")" = "$s2" ] || return 1
	local entries
	entries=$(rig_sticky_count lb1)
	rig_assert "sticky list holds 2 entries (got $entries)" [ "$entries" = 2 ] || return 1
	local exp
	exp=$(rig_lbctl lb1 --json sticky get "$c1ip" | rig_jval expires_in_s)
	rig_assert "c1's entry expires in ~1800 s (got $exp)" [ "$exp" -gt 1790 ] || return 1
	echo "  figure: c1 -> $s1 (20/20), c2 -> $s2 (10/10), sticky entries $entries"
	return 0
}

# `lbctl sticky list` of a table bigger than one page (10000 entries):
# 25000 entries put in with `sticky set` (tests/bench/stickyfill.c) come
# back complete, each client once, in three pages of at most 10000, and
# `status` answers at once while a listing runs.
STICKY_PAGES_N=25000	# entries in the table: two full pages and a part

drill_sticky_pages() {
	local fill out n uniq pages big t0 t1 tst
	rig_lbctl lb1 sticky flush >/dev/null
	make -C "$RIG_TOP" -s build/bench/stickyfill || rig_die "could not build build/bench/stickyfill"
	fill=$("$RIG_TOP/build/bench/stickyfill" -s "$(rig_sock lb1)" -b FTP_SVR1,FTP_SVR2 -S "$RIG_SERVICE" \
		-n "$STICKY_PAGES_N" -d 120 2>&1)
	rig_assert "stickyfill put $STICKY_PAGES_N entries in: $fill" \
		[ "$(rig_lbctl lb1 --json status | rig_jval sticky_entries)" = "$STICKY_PAGES_N" ] || return 1
	t0=${EPOCHREALTIME/./}
	out=$(rig_lbctl lb1 sticky list)
	t1=${EPOCHREALTIME/./}
	n=$(($(wc -l <<<"$out") - 1))
	uniq=$(tail -n +2 <<<"$out" | awk '{ print $2 }' | sort -u | wc -l)
	rig_assert "lbctl sticky list prints a header and $STICKY_PAGES_N rows (got $n)" \
		eval '[ "$n" = "$STICKY_PAGES_N" ] && [ "$(head -1 <<<"$out" | awk "{ print \$1 }")" = SERVICE ]' || return 1
	rig_assert "each client listed once ($uniq distinct)" [ "$uniq" = "$STICKY_PAGES_N" ] || return 1
	out=$(rig_lbctl lb1 --json sticky list)
	pages=$(wc -l <<<"$out")
	big=$(while read -r l; do grep -o '"client"' <<<"$l" | wc -l; done <<<"$out" | sort -n | tail -1)
	rig_assert "--json: 3 pages, one line each ($pages), at most 10000 entries per page (largest $big)" \
		eval '[ "$pages" = 3 ] && [ "$big" -le 10000 ]' || return 1
	# A listing in progress does not hold up other commands.
	rig_lbctl lb1 sticky list >/dev/null &
	tst=$( { time -p rig_lbctl lb1 status >/dev/null; } 2>&1 | awk '/^real/ { print $2 }')
	wait
	echo "  figure: $STICKY_PAGES_N entries listed in $pages pages by lbctl in $(((t1 - t0) / 1000)) ms; status during a listing: ${tst} s"
	rig_assert "status answered within 1 s while a listing ran (${tst} s)" \
		awk -v t="$tst" 'BEGIN { exit !(t != "" && t < 1) }' || return 1
	rig_lbctl lb1 sticky flush >/dev/null
	return 0
}
