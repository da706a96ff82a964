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
