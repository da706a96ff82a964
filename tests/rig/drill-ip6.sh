# drill-ip6.sh - the pair on IPv6 only (RIG_IP6=1, lib.sh: fd00:86::/64,
# VIP fd00:86::87, the same host numbers as the IPv4 rig).  run-drills
# runs them in a third rig after the IPv4 ones: ip6_ftps here, then the
# IPv4 rig's ha_failover (a planned handover during a download: the ip6
# handover steering), ha_crash (kill -9, unsolicited NA) and mirror_crash
# (mirrored sessions), unchanged.
#
#   ip6_ftps   explicit and implicit FTPS through [VIP], EPSV data, the
#              same real server per client (sticky, IPv6 entries)

# Server name of one explicit and one implicit fetch of server.txt by
# client NODE through [VIP]; "explicit implicit" ("-" for a failure).
_ip6_names() {
	local e i
	e=$(rig_curl "$1" explicit "$RIG_VIP" server.txt 2>/dev/null) || e=-
	i=$(rig_curl "$1" implicit "$RIG_VIP" server.txt 2>/dev/null) || i=-
	echo "$e $i"
}

drill_ip6_ftps() {
	local r=0 n1 n2 v out sha e i c a
	rig_assert "the rig is IPv6 only: VIP $RIG_VIP, lb1 ${RIG_ADDR[lb1]}, c1 $(rig_client_ip 1)" \
		[ "$RIG_IP6" = 1 ] || return 1
	rig_assert "lb1 holds the IPv6 VIP on eth0" _rig_vip_on lb1 || r=1
	read -r e i <<<"$(_ip6_names c1)"
	echo "  figure: c1 ($(rig_client_ip 1)) through [$RIG_VIP]: explicit $e, implicit $i"
	rig_assert "explicit (AUTH TLS) and implicit FTPS through [VIP] reach a real server" rig_is_server "$e" || r=1
	rig_assert "implicit reaches the same real server as explicit (sticky): $e $i" [ "$e" = "$i" ] || r=1
	# EPSV: curl's verbose log shows the command and the 229 answer.
	v=$(rig_curl c1 explicit "$RIG_VIP" server.txt -v 2>&1 >/dev/null)
	rig_assert "the data connection is passive by EPSV (229)" grep -q '^< 229 ' <<<"$v" || r=1
	rig_assert "no PASV on IPv6" eval '! grep -q "^> PASV" <<<"$v"' || r=1
	sha=$(rig_curl c1 explicit "$RIG_VIP" big.bin | sha256sum | cut -d' ' -f1)
	rig_assert "big.bin through [VIP] (explicit, EPSV data) has its sha256" [ "$sha" = "$RIG_BIG_SHA" ] || r=1
	out=$(rig_lftp c2 explicit "$RIG_VIP" "cat server.txt" 2>&1)
	echo "  figure: lftp from c2 ($(rig_client_ip 2)), explicit: $out"
	rig_assert "lftp (GnuTLS) through [VIP] reads a server name" rig_is_server "$out" || r=1
	# Both clients stay on their servers: 3 more sessions each, from their
	# own address (c2 has more: IPv6 source selection would pick another).
	for c in c1 c2; do
		a=$(rig_client_ip "${c#c}")
		n1=$(rig_curl "$c" explicit "$RIG_VIP" server.txt --interface "$a" 2>/dev/null)
		for _ in 1 2 3; do
			n2=$(rig_curl "$c" explicit "$RIG_VIP" server.txt --interface "$a" 2>/dev/null)
			[ "$n2" = "$n1" ] || break
		done
		rig_assert "$c's sessions stay on $n1 ($n2)" [ -n "$n1" ] && [ "$n2" = "$n1" ] || r=1
		rig_assert "lb1's sticky table has $c's IPv6 address on $n1 ($(rig_sticky_of lb1 "$(rig_client_ip "${c#c}")"))" \
			[ "$(rig_sticky_of lb1 "$(rig_client_ip "${c#c}")")" = "$n1" ] || r=1
		rig_wait 3000 eval '[ "$(rig_sticky_of lb2 "$(rig_client_ip "${c#c}")")" = "$n1" ]'
		rig_assert "lb2 has it too (replicated)" [ "$(rig_sticky_of lb2 "$(rig_client_ip "${c#c}")")" = "$n1" ] || r=1
	done
	# The python client: LIST + RETR with PROT P, data connections resuming TLS.
	out=$(rig_py c1 session "$RIG_VIP" 2>&1 | tail -1)
	echo "  figure: ftpsclient.py session through [VIP]: $(cut -c1-200 <<<"$out")"
	rig_assert "python ftplib session (LIST, RETR, PROT P, TLS resumed) through [VIP]" \
		grep -q '"ok": true' <<<"$out" || r=1
	return $r
}
