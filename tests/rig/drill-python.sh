# drill-python.sh - python ftplib over one control connection through the
# VIP: login, PROT P, LIST twice, RETR twice; every data connection must
# resume the control connection's TLS session (vsftpd require_ssl_reuse).

drill_python() {
	local mode out
	for mode in explicit implicit; do
		local flag=
		[ $mode = implicit ] && flag=--implicit
		out=$(rig_py c1 session "$RIG_VIP" $flag --lists 2 --retrs 2)
		echo "  $mode: $out"
		rig_assert "$mode ftplib session via VIP succeeded" \
			[ "$(rig_jval ok <<<"$out")" = true ] || return 1
		rig_assert "$mode: 4 data connections, all resumed the TLS session" \
			grep -q '"data_reused": \[true, true, true, true\]' <<<"$out" || return 1
		rig_assert "$mode: both LISTs returned entries" \
			grep -Eq '"lists": \[([2-9]|[1-9][0-9]+), ([2-9]|[1-9][0-9]+)\]' <<<"$out" || return 1
	done
	# A 64 MiB RETR over ftplib through the VIP, checked end to end.
	out=$(rig_py c1 get "$RIG_VIP" big.bin)
	rig_assert "ftplib RETR big.bin via VIP: sha256 matches, session resumed" \
		[ "$(rig_jval sha256 <<<"$out")" = "$RIG_BIG_SHA" ] || return 1
	echo "  figure: ftplib ${RIG_BIG_MIB}MiB via VIP: $(rig_jval seconds <<<"$out") s"
	return 0
}
