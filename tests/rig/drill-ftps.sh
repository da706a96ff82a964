# drill-ftps.sh - explicit and implicit FTPS through the VIP, and a 64 MiB
# explicit transfer through the VIP against the same transfer direct.

# Fetches big.bin with curl twice (the machine may be busy: the better
# run counts); prints "seconds bytes_per_s sha256" of the faster run, or
# sha256 "mismatch" when either run's file differs.
# Usage: _ftps_big NODE HOST [curl args...]
_ftps_big() {
	local node=$1 host=$2; shift 2
	local out=$RIG_DIR/big.$node.$$ w sha best='' i
	for ((i = 0; i < 2; i++)); do
		w=$(rig_curl "$node" explicit "$host" big.bin -o "$out" \
			-w '%{time_total} %{speed_download}' "$@") || { rm -f "$out"; return 1; }
		sha=$(sha256sum "$out" | cut -d' ' -f1)
		rm -f "$out"
		[ "$sha" = "$RIG_BIG_SHA" ] || { echo "$w mismatch"; return 0; }
		if [ -z "$best" ] || awk -v a="${w%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
			best=$w
		fi
	done
	echo "$best $sha"
}

drill_ftps() {
	local s e i mode t
	t=$(rig_sval "$(rig_status lb1)" relay_threads)
	rig_assert "lb1 relays in '$t' worker threads (RIG_RELAY_THREADS '${RIG_RELAY_THREADS:-}')" \
		eval '[[ ! $RIG_RELAY_THREADS =~ ^[0-9]+$ ]] || [ "$t" = "$RIG_RELAY_THREADS" ]' || return 1
	s=$(rig_curl c1 explicit "$RIG_VIP" server.txt)
	rig_assert "explicit FTPS (AUTH TLS) via VIP:21 -> '$s'" \
		rig_is_server "$s" || return 1
	i=$(rig_curl c1 implicit "$RIG_VIP" server.txt)
	rig_assert "implicit FTPS via VIP:990 -> '$i'" rig_is_server "$i" || return 1
	rig_assert "both on the same server (sticky)" [ "$s" = "$i" ] || return 1
	e=$(rig_curl c1 explicit "$RIG_VIP" "" --list-only)
	rig_assert "LIST via VIP shows server.txt and big.bin" \
		_ftps_has_files "$e" || return 1

	local l
	for mode in explicit implicit; do
		l=$(rig_lftp c1 $mode "$RIG_VIP" "cat server.txt")
		rig_assert "lftp $mode FTPS via VIP: cat server.txt -> '$l'" [ "$l" = "$s" ] || return 1
	done

	local via direct vt vs dt ds node=${RIG_FTP_NODE[$s]}
	via=$(_ftps_big c1 "$RIG_VIP")
	rig_assert "${RIG_BIG_MIB} MiB via VIP, twice: sha256 matches" \
		[ "${via##* }" = "$RIG_BIG_SHA" ] || return 1
	# Direct: the server announces the VIP in PASV, so curl is told to use
	# the control connection's address for the data connection instead.
	direct=$(_ftps_big c1 "${RIG_ADDR[$node]}" --ftp-skip-pasv-ip)
	rig_assert "${RIG_BIG_MIB} MiB direct to $s, twice: sha256 matches" \
		[ "${direct##* }" = "$RIG_BIG_SHA" ] || return 1
	read -r vt vs _ <<<"$via"
	read -r dt ds _ <<<"$direct"
	awk -v m="$RIG_BIG_MIB" -v vt="$vt" -v vs="$vs" -v dt="$dt" -v ds="$ds" 'BEGIN {
		printf "  figure: explicit %dMiB via VIP (best of 2): %.2f s (%.0f MB/s); direct: %.2f s (%.0f MB/s); via/direct %.2f\n",
		    m, vt, vs / 1e6, dt, ds / 1e6, (ds > 0 ? vs / ds : 0) }'
	# Implicit too, for the record.
	local imp it is
	imp=$(rig_curl c1 implicit "$RIG_VIP" big.bin -o /dev/null -w '%{time_total} %{speed_download}')
	read -r it is <<<"$imp"
	awk -v m="$RIG_BIG_MIB" -v t="$it" -v s="$is" 'BEGIN {
		printf "  figure: implicit %dMiB via VIP: %.2f s (%.0f MB/s)\n", m, t, s / 1e6 }'
	return 0
}

_ftps_has_files() { grep -qx server.txt <<<"$1" && grep -qx big.bin <<<"$1"; }
