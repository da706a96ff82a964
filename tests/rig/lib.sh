# lib.sh - the namespace rig: builds a switch, clients, lbd nodes and vsftpd
# real servers inside network namespaces, runs commands in them and tears
# everything down again.  Sourced by run-drills, demo and the drill files.
#
# Nothing here touches the host's network: every address lives on a veth
# whose both ends are inside namespaces this run created, and no route is
# added to the host.  Every process the rig starts has its pid recorded
# under $RIG_DIR/pids and is killed by that pid; every namespace is listed
# in $RIG_DIR/netns and deleted at exit, even after a failure.
#
# Functions take node names ("c1", "lb1", "ftp1", ...), so a second lbd
# node is one more rig_node_add + rig_lb_start.

RIG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)	# tests/rig
RIG_TOP=$(cd "$RIG_SRC/../.." && pwd)			# the source tree
RIG_LBD=${RIG_LBD:-$RIG_TOP/build/lbd}			# daemon under test
RIG_LBCTL=${RIG_LBCTL:-$RIG_TOP/build/lbctl}		# its CLI

RIG_NET=192.168.86					# the rig's /24
RIG_VIP=$RIG_NET.87					# the service VIP
RIG_PLEN=24						# VIP prefix length
RIG_SERVICE=FTPS_VIP					# the one service
RIG_CLIENT_BASE=100					# c1 = .100, c2 = .101, ...
RIG_CHECK_INTERVAL_MS=500				# health check interval
RIG_CHECK_RISE=2					# checks to go up
RIG_CHECK_FALL=2					# checks to go down
RIG_IDLE_TIMEOUT_S=${RIG_IDLE_TIMEOUT_S:-30}		# lbd idle timeout in the rig
RIG_RELAY_THREADS=${RIG_RELAY_THREADS:-}		# node.relay_threads of the nodes; empty or auto: lbd's default
RIG_BIG_MIB=${RIG_BIG_MIB:-64}				# size of big.bin
# 1: the pair's configs say `mirror = true;` in the cluster group
# (connection mirroring, drill-mirror.sh).  0 until lbd knows the key: its
# config check rejects unknown keys, so 1 now stops every pair drill.
RIG_MIRROR=${RIG_MIRROR:-1}
RIG_STALE_GLOB=/tmp/lbdrig.				# temp dir prefix (stale cleaner)
RIG_METRICS_LISTEN=127.0.0.1:9187			# metrics endpoint, on the lb namespace's own loopback

# RIG_IP6=1: the same rig on IPv6 only (a ULA /64, the same host
# numbers): nodes, peers, VIP, real servers and clients; EPSV data.
RIG_IP6=${RIG_IP6:-0}
RIG_NET6=fd00:86::					# the IPv6 rig's /64

# Host address N of the rig's subnet (the IPv4 .N, or fd00:86::N).
rig_host() { [ "$RIG_IP6" = 1 ] && echo "$RIG_NET6$1" || echo "$RIG_NET.$1"; }
# Prefix length of one host (blackhole routes) and of the subnet.
rig_host_plen() { [ "$RIG_IP6" = 1 ] && echo 128 || echo 32; }
rig_net_plen() { [ "$RIG_IP6" = 1 ] && echo 64 || echo 24; }
# ADDR as a URL host: IPv6 literals in brackets.
rig_url_host() { [[ $1 == *:* ]] && echo "[$1]" || echo "$1"; }

# Addresses of the rig's nodes, the VIP and its prefix for RIG_IP6 (again
# when a run changes it before building a rig).
declare -A RIG_ADDR
rig_family_set() {
	RIG_ADDR=([lb1]=$(rig_host 2) [lb2]=$(rig_host 3) [ftp1]=$(rig_host 50) [ftp2]=$(rig_host 51))
	RIG_VIP=$(rig_host 87)
	RIG_PLEN=$(rig_net_plen)
}
rig_family_set
# Real server names served in server.txt and used as lbd backend names.
declare -A RIG_FTP_NAME=([ftp1]=FTP_SVR1 [ftp2]=FTP_SVR2)
# Node of a backend name.
declare -A RIG_FTP_NODE=([FTP_SVR1]=ftp1 [FTP_SVR2]=ftp2)

# TLS: vsftpd 3.0.3 predates TLS 1.3 but, linked against OpenSSL 3, it
# negotiates it.  require_ssl_reuse then needs the data connection to resume
# with a session ticket the server sent after the control handshake.  Checked
# in this rig: curl 7.88 and ftplib with ReuseFTP_TLS (ftpsclient.py) both
# resume correctly under TLS 1.3 and 1.2 (session_reused true on every data
# connection), so the clients are not capped.  What does break is stock
# ftplib (no session= on the data socket: "522 session reuse required") and
# vsftpd's default cipher list (DES-CBC3-SHA, refused by OpenSSL 3: the
# configs set ssl_ciphers=HIGH).  RIG_TLS_MAX=1.2 caps every rig client
# (curl --tls-max, SSLContext.maximum_version) should a client need it.
RIG_TLS_MAX=${RIG_TLS_MAX:-1.3}

# ------------------------------------------------------------ messages

rig_log()  { printf '%s\n' "$*"; }
rig_step() { printf '== %s\n' "$*"; }
rig_die()  { printf 'rig: %s\n' "$*" >&2; exit 1; }
# Wall clock in ms, without a fork (bash 5 EPOCHREALTIME).
rig_ms()   { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# Prints "  ok: MSG" and succeeds when the command succeeds, else prints
# "  FAIL: MSG" and fails.  Usage: rig_assert "MSG" test ARGS...
rig_assert() {
	local msg=$1; shift
	if "$@"; then
		printf '  ok: %s\n' "$msg"
		return 0
	fi
	printf '  FAIL: %s\n' "$msg"
	return 1
}

rig_fail() { printf '  FAIL: %s\n' "$*"; return 1; }

# Polls "$@" every 50 ms until it succeeds or TIMEOUT_MS passes.
# Returns: 0 once it succeeded, 1 on timeout.  RIG_WAITED_MS holds the time.
rig_wait() {
	local timeout_ms=$1; shift
	local start now
	start=$(rig_ms)
	local i max=$((timeout_ms / 50 + 1))
	for ((i = 0; i <= max; i++)); do
		if "$@" >/dev/null 2>&1; then
			now=$(rig_ms)
			RIG_WAITED_MS=$((now - start))
			return 0
		fi
		now=$(rig_ms)
		((now - start >= timeout_ms)) && break
		sleep 0.05
	done
	RIG_WAITED_MS=$(( $(rig_ms) - start ))
	return 1
}

# ------------------------------------------------------------ setup, teardown

# Kills every process in namespace NS (by pid, a few rounds: a dying
# vsftpd may still fork) and deletes it.
_rig_netns_purge() {
	local ns=$1 p i pids
	for ((i = 0; i < 10; i++)); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] || break
		for p in $pids; do
			kill -9 "$p" 2>/dev/null
		done
		sleep 0.05
	done
	ip netns del "$ns" 2>/dev/null || echo "rig: could not delete netns $ns" >&2
}

# Removes what a rig run killed with SIGKILL left behind: only temp dirs
# whose rig.pid names a dead process, only namespaces those dirs list that
# carry the rig prefix, and only recorded processes whose command line
# still names that dir.
rig_clean_stale() {
	local d pid ns f
	for d in "$RIG_STALE_GLOB"*; do
		[ -f "$d/rig.pid" ] || continue
		pid=$(cat "$d/rig.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && continue
		if [ -f "$d/netns" ]; then
			while read -r ns; do
				[[ $ns =~ ^lr[0-9]{4}- ]] || continue
				[ -e "/run/netns/$ns" ] || continue
				_rig_netns_purge "$ns"
			done <"$d/netns"
		fi
		for f in "$d"/pids/*; do
			[ -f "$f" ] || continue
			pid=$(cat "$f")
			[ -n "$pid" ] && grep -qF "$d" "/proc/$pid/cmdline" 2>/dev/null &&
				kill -9 "$pid" 2>/dev/null
		done
		rm -rf -- "$d"
	done
}

# Creates the run's temp dir, prefix and exit trap.
rig_init() {
	[ "$(id -u)" = 0 ] || rig_die "the rig needs root (network namespaces)"
	local t
	for t in ip vsftpd curl openssl python3 socat; do
		command -v "$t" >/dev/null || rig_die "missing tool: $t (make deps)"
	done
	rig_clean_stale
	RIG_PREFIX=lr$(printf '%04d' $((RANDOM % 10000)))
	local i
	for ((i = 0; i < 20; i++)); do
		ls /run/netns/"$RIG_PREFIX"-* >/dev/null 2>&1 || break
		RIG_PREFIX=lr$(printf '%04d' $((RANDOM % 10000)))
	done
	RIG_DIR=$(mktemp -d "${RIG_STALE_GLOB}XXXXXX") || rig_die "mktemp failed"
	chmod 755 "$RIG_DIR"
	echo $$ >"$RIG_DIR/rig.pid"
	mkdir -p "$RIG_DIR/pids"
	: >"$RIG_DIR/netns"
	export RIG_PREFIX RIG_DIR
	trap rig_teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Kills the process recorded as NAME (SIGTERM, then SIGKILL after 3 s).
rig_kill() {
	local name=$1 sig=${2:-TERM}
	local f=$RIG_DIR/pids/$name pid i
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	rm -f "$f"
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 60; i++)); do
		rig_pid_running "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
	for ((i = 0; i < 20; i++)); do
		rig_pid_running "$pid" || return 0
		sleep 0.05
	done
	return 0
}

rig_pid() { cat "$RIG_DIR/pids/$1" 2>/dev/null; }

# True when process PID runs: exists and is not a zombie (kill -0 succeeds
# on a zombie the shell has not reaped yet).
rig_pid_running() {
	local st
	[ -n "$1" ] || return 1
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# True when the process recorded as NAME runs.
rig_alive() { rig_pid_running "$(rig_pid "$1")"; }

rig_teardown() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$RIG_DIR" ] && [ -d "$RIG_DIR" ] || exit "$rc"
	if [ "${RIG_KEEP:-0}" = 1 ] && [ -t 0 ]; then
		rig_log "rig kept up: prefix $RIG_PREFIX, dir $RIG_DIR"
		rig_log "  e.g. ip netns exec $RIG_PREFIX-c1 curl -sk --ssl-reqd ftp://$RIG_VIP/server.txt"
		rig_log "  $RIG_LBCTL -s $RIG_DIR/lb1.sock status"
		rig_log "press Enter to tear down (or wait 30 min)"
		read -r -t 1800 _ || true
	fi
	local f ns
	for f in "$RIG_DIR"/pids/*; do
		[ -f "$f" ] || continue
		rig_kill "$(basename "$f")" TERM
	done
	# What is left: vsftpd session processes, clients of a failed drill.
	while read -r ns; do
		[ -n "$ns" ] && [ -e "/run/netns/$ns" ] || continue
		_rig_netns_purge "$ns"
	done <"$RIG_DIR/netns"
	if [ "${RIG_KEEP_LOGS:-0}" = 1 ] || { [ "$rc" != 0 ] && [ -n "${RIG_LOGS_ON_FAIL:-}" ]; }; then
		local keep=/tmp/lbdrig-logs.$RIG_PREFIX
		mkdir -p "$keep" && cp "$RIG_DIR"/*.log "$RIG_DIR"/*.conf "$keep"/ 2>/dev/null
		for f in "$RIG_DIR"/*/*.log; do
			[ -f "$f" ] && cp "$f" "$keep/$(basename "$(dirname "$f")")-$(basename "$f")"
		done
		echo "rig: logs kept in $keep" >&2
	fi
	rm -rf -- "$RIG_DIR"
	exit "$rc"
}

# ------------------------------------------------------------ namespaces

rig_ns() { printf '%s-%s' "$RIG_PREFIX" "$1"; }

# Runs a command inside node NAME's namespace.
rig_exec() {
	local node=$1; shift
	ip netns exec "$(rig_ns "$node")" "$@"
}

# Starts a command in the background inside node NODE, stdout+stderr to
# LOG, pid recorded as NAME.  Usage: rig_bg NODE NAME LOG cmd...
rig_bg() {
	local node=$1 name=$2 log=$3; shift 3
	ip netns exec "$(rig_ns "$node")" "$@" >>"$log" 2>&1 </dev/null &
	echo $! >"$RIG_DIR/pids/$name"
	# Out of the job table: no "Killed" notices when the rig kills it.
	disown $!
}

_rig_netns_add() {
	ip netns add "$1" || rig_die "ip netns add $1 failed"
	echo "$1" >>"$RIG_DIR/netns"
	ip -n "$1" link set lo up
}

# The switch: a namespace holding one bridge, br0.
rig_switch_up() {
	local sw
	sw=$(rig_ns sw)
	_rig_netns_add "$sw"
	ip -n "$sw" link add br0 type bridge || rig_die "bridge failed"
	# Forward at once: no STP listening delay on new ports.
	ip -n "$sw" link set br0 type bridge forward_delay 0 stp_state 0
	ip -n "$sw" link set br0 up
}

# Adds node NAME with eth0 on the switch and the given addresses (the
# subnet's prefix; IPv6 ones without duplicate address detection, so
# they work at once).
# The veth is created inside the switch namespace and its peer moved
# straight into the node's, so no interface ever appears on the host.
rig_node_add() {
	local node=$1; shift
	local ns sw veth a
	ns=$(rig_ns "$node")
	sw=$(rig_ns sw)
	veth=${RIG_PREFIX}${node}			# e.g. lr1234ftp1 (<= 15)
	veth=${veth:0:15}
	_rig_netns_add "$ns"
	ip -n "$sw" link add "$veth" type veth peer name eth0 netns "$ns" ||
		rig_die "veth for $node failed"
	ip -n "$sw" link set "$veth" master br0
	ip -n "$sw" link set "$veth" up
	for a in "$@"; do
		# shellcheck disable=SC2046
		ip -n "$ns" addr add "$a/$(rig_net_plen)" dev eth0 $([[ $a == *:* ]] && echo nodad) ||
			rig_die "addr $a on $node failed"
	done
	ip -n "$ns" link set eth0 up
}

# Link of node NAME on the switch side: up or down (power-off drills).
rig_link() {
	local node=$1 state=$2 veth=${RIG_PREFIX}${1}
	ip -n "$(rig_ns sw)" link set "${veth:0:15}" "$state"
}

# Address of client N (1-based): c1 = .100, c2 = .101, ...
rig_client_ip() { rig_host $((RIG_CLIENT_BASE + $1 - 1)); }

# Clients c1..cN.  EXTRA more addresses go on cN's eth0 as aliases
# (.100+N ...), for drills that need many source addresses.
rig_clients_up() {
	local n=$1 extra=${2:-0} i addrs
	for ((i = 1; i <= n; i++)); do
		addrs=$(rig_client_ip "$i")
		if ((i == n)); then
			local j
			for ((j = 1; j <= extra; j++)); do
				addrs="$addrs $(rig_client_ip $((n + j)))"
			done
		fi
		# shellcheck disable=SC2086
		rig_node_add "c$i" $addrs
	done
	RIG_NCLIENTS=$n
}

# Waits until something in node NODE accepts TCP on ADDR:PORT.
rig_port_open() {
	rig_exec "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}

# ------------------------------------------------------------ vsftpd

# Self-signed certificate for both servers (RSA 2048), made once per run.
rig_cert() {
	[ -f "$RIG_DIR/ftps.pem" ] && return 0
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ftps-rig" \
		-keyout "$RIG_DIR/ftps.key" -out "$RIG_DIR/ftps.pem" >/dev/null 2>&1 ||
		rig_die "openssl req failed"
	chmod 600 "$RIG_DIR/ftps.key"
}

# big.bin: RIG_BIG_MIB MiB of random bytes, the same file on every server.
rig_bigfile() {
	[ -f "$RIG_DIR/big.bin" ] && return 0
	head -c $((RIG_BIG_MIB * 1024 * 1024)) /dev/urandom >"$RIG_DIR/big.bin" ||
		rig_die "could not make big.bin"
	RIG_BIG_SHA=$(sha256sum "$RIG_DIR/big.bin" | cut -d' ' -f1)
	echo "$RIG_BIG_SHA" >"$RIG_DIR/big.sha256"
}

# Writes one vsftpd config.  Usage: _rig_vsftpd_conf NODE PORT IMPLICIT(YES|NO)
_rig_vsftpd_conf() {
	local node=$1 port=$2 implicit=$3 d=$RIG_DIR/$1
	cat >"$d/vsftpd-$port.conf" <<EOF
# vsftpd for rig node $node, $( [ "$implicit" = YES ] && echo implicit || echo explicit ) FTPS on $port.
$(if [ "$RIG_IP6" = 1 ]; then
	printf 'listen=NO\nlisten_ipv6=YES\nlisten_address6=%s\n' "${RIG_ADDR[$node]}"
else
	printf 'listen=YES\nlisten_ipv6=NO\nlisten_address=%s\n' "${RIG_ADDR[$node]}"
fi)
listen_port=$port
background=NO
# Anonymous only, chrooted into the node's root; uploads go to upload/.
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$d/root
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=NO
anon_umask=022
ftp_username=ftp
nopriv_user=nobody
secure_chroot_dir=$RIG_DIR/empty
hide_ids=YES
# Passive only, announcing the VIP (PASV; EPSV names no address), the range lbd forwards.
pasv_enable=YES
$([ "$RIG_IP6" = 1 ] || echo "pasv_address=$RIG_VIP")
pasv_min_port=1025
pasv_max_port=1052
port_enable=NO
connect_from_port_20=NO
# FTPS required for everything, anonymous included.
ssl_enable=YES
implicit_ssl=$implicit
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
force_local_logins_ssl=YES
force_local_data_ssl=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=YES
# 3.0.3's default cipher list is DES-CBC3-SHA, which OpenSSL 3 refuses.
ssl_ciphers=HIGH
# The data connection must resume the control connection's TLS session.
require_ssl_reuse=YES
rsa_cert_file=$RIG_DIR/ftps.pem
rsa_private_key_file=$RIG_DIR/ftps.key
# 3.0.3's seccomp filter predates today's glibc syscalls.
seccomp_sandbox=NO
# Keep session processes in the node's namespaces (isolate_network would
# give each its own netns, out of reach of teardown's "ip netns pids").
isolate=NO
isolate_network=NO
# Short timeouts so abandoned sessions end within a drill.
idle_session_timeout=20
data_connection_timeout=20
accept_timeout=10
connect_timeout=10
max_clients=0
max_per_ip=0
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file=$d/vsftpd-$port.xfer.log
EOF
}

# Prepares node NODE's root (server.txt, big.bin, upload/) and configs.
rig_ftp_setup() {
	local node=$1 d=$RIG_DIR/$1
	rig_cert
	rig_bigfile
	mkdir -p "$d/root/upload" "$RIG_DIR/empty"
	chmod 755 "$d" "$d/root" "$RIG_DIR/empty"
	chown ftp:ftp "$d/root/upload"
	chmod 755 "$d/root/upload"
	echo "${RIG_FTP_NAME[$node]}" >"$d/root/server.txt"
	ln "$RIG_DIR/big.bin" "$d/root/big.bin" 2>/dev/null ||
		cp "$RIG_DIR/big.bin" "$d/root/big.bin"
	_rig_vsftpd_conf "$node" 21 NO
	_rig_vsftpd_conf "$node" 990 YES
}

# Starts node NODE's two vsftpd instances and waits for both ports.
rig_ftp_start() {
	local node=$1 d=$RIG_DIR/$1 port
	for port in 21 990; do
		rig_bg "$node" "$node-vsftpd-$port" "$d/vsftpd-$port.log" \
			vsftpd "$d/vsftpd-$port.conf"
	done
	for port in 21 990; do
		rig_wait 5000 rig_port_open "$node" "${RIG_ADDR[$node]}" "$port" ||
			rig_die "vsftpd $node:$port did not start: $(cat "$d/vsftpd-$port.log")"
	done
}

# Kills node NODE's two vsftpd listeners (SIG, default TERM); running
# sessions are their own processes and stay until they end.
rig_ftp_stop() {
	local node=$1 sig=${2:-TERM}
	rig_kill "$node-vsftpd-21" "$sig"
	rig_kill "$node-vsftpd-990" "$sig"
}

# ------------------------------------------------------------ lbd

rig_sock() { echo "$RIG_DIR/$1.sock"; }

# Writes node NODE's lbd config to $RIG_DIR/NODE.conf.  PEER (optional) is
# the other lbd node's name; it makes a pair with a shared cluster key.
rig_lb_conf() {
	local node=$1 peer=${2:-} prio=${3:-}
	local f=$RIG_DIR/$node.conf threads
	[ -n "$prio" ] || { [ "$node" = lb1 ] && prio=150 || prio=100; }
	{
		echo "# lbd config of rig node $node (generated by tests/rig/lib.sh)"
		threads=$RIG_RELAY_THREADS
		[ "$threads" = auto ] && threads=
		echo "node = { name = \"$node\"; address = \"${RIG_ADDR[$node]}\"; priority = $prio;${threads:+ relay_threads = $threads;} };"
		if [ -n "$peer" ]; then
			echo "peer = { name = \"$peer\"; address = \"${RIG_ADDR[$peer]}\"; };"
			echo "cluster = { key_file = \"$RIG_DIR/cluster.key\"; advert_interval_ms = ${RIG_ADVERT_MS:-100}; preempt = true;$([ "$RIG_MIRROR" = 1 ] && echo " mirror = true;") };"
		fi
		cat <<EOF
vip = { address = "$RIG_VIP/$RIG_PLEN"; interface = "eth0"; };
control = { socket = "$(rig_sock "$node")"; };
metrics = { listen = "$RIG_METRICS_LISTEN"; };
services = (
  {
    name = "$RIG_SERVICE";
    ports = [ "21", "990", "1025-1052" ];
$([ -z "${RIG_MIRROR_PORTS:-}" ] || echo "    mirror_ports = [ $RIG_MIRROR_PORTS ];")
    scheduler = "leastconn";
    sticky_timeout_s = 1800;
    connect_timeout_ms = 3000;
    idle_timeout_s = $RIG_IDLE_TIMEOUT_S;
$([ -z "${RIG_MAX_CONN_PER_CLIENT:-}" ] || echo "    max_connections_per_client = $RIG_MAX_CONN_PER_CLIENT;")
    source = "vip";
    check = { type = "ftp"; port = 21; interval_ms = $RIG_CHECK_INTERVAL_MS; timeout_ms = 500; rise = $RIG_CHECK_RISE; fall = $RIG_CHECK_FALL; };
    backends = (
      { name = "FTP_SVR1"; address = "${RIG_ADDR[ftp1]}"; weight = ${RIG_WEIGHT1:-1}; },
      { name = "FTP_SVR2"; address = "${RIG_ADDR[ftp2]}"; weight = 1; }
    );
  }
);
EOF
	} >"$f"
}

# lbctl against node NODE's socket.  Usage: rig_lbctl NODE [--json] CMD...
# Without a built lbctl it speaks to the socket with socat: the reply is
# the daemon's JSON either way, and the exit code follows lbctl's (0 ok,
# 1 {"error": ...}, 2 unreachable).
rig_lbctl() {
	local node=$1; shift
	if [ -x "$RIG_LBCTL" ]; then
		"$RIG_LBCTL" -s "$(rig_sock "$node")" "$@"
		return
	fi
	[ "$1" = --json ] && shift
	local reply
	reply=$(printf '%s\n' "$*" | timeout 5 socat -t 5 - "UNIX-CONNECT:$(rig_sock "$node")" 2>/dev/null) ||
		return 2
	[ -n "$reply" ] || return 2
	printf '%s\n' "$reply"
	[ -z "$(rig_jval error <<<"$reply")" ]
}

# Starts lbd on node NODE (config written by rig_lb_conf if absent) and
# waits for its control socket to answer.
rig_lb_start() {
	local node=$1
	[ -x "$RIG_LBD" ] || rig_die "$RIG_LBD is not built (make all)"
	[ -f "$RIG_DIR/$node.conf" ] || rig_lb_conf "$node"
	"$RIG_LBD" -n -c "$RIG_DIR/$node.conf" >/dev/null ||
		rig_die "lbd -n rejects $RIG_DIR/$node.conf"
	# lbd logs without timestamps (systemd's journal adds them): a FIFO and
	# a builtin-only loop stamp each line with the wall clock (ms), so the
	# log lines up with the drills' figures.
	local fifo=$RIG_DIR/$node.log.fifo
	[ -p "$fifo" ] || mkfifo "$fifo" || rig_die "mkfifo $fifo failed"
	(
		while IFS= read -r l; do
			t=${EPOCHREALTIME}
			printf '%(%H:%M:%S)T.%s %s\n' "${t%.*}" "${t#*.}" "$l"
		done <"$fifo" >>"$RIG_DIR/$node.log"
	) &
	echo $! >"$RIG_DIR/pids/$node-logstamp"
	disown $!
	RIG_LB_STARTED_MS=$(rig_ms)	# for drills that time what follows a start
	rig_bg "$node" "$node-lbd" "$fifo" "$RIG_LBD" ${RIG_LBD_ARGS:--d} -c "$RIG_DIR/$node.conf"
	if ! rig_wait 5000 rig_lbctl "$node" status; then
		sed 's/^/  lbd: /' "$RIG_DIR/$node.log" | tail -20 >&2
		rig_die "lbd on $node did not answer on its control socket"
	fi
}

rig_lb_stop() { rig_kill "$1-lbd" "${2:-TERM}"; }

rig_lb_pid() { rig_pid "$1-lbd"; }

# Number of open fds of node NODE's lbd; with "nopipes", pipes left out
# (the relay keeps up to RELAY_POOL_MAX spare empty pipes a worker).
rig_lb_fds() {
	local pid
	pid=$(rig_lb_pid "$1")
	if [ "${2:-}" = nopipes ]; then
		find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | grep -vc '^pipe:'
	else
		ls "/proc/$pid/fd" 2>/dev/null | wc -l
	fi
}

# JSON without python: starting python3 costs hundreds of ms on a loaded
# machine, too slow for 50 ms polls.  lbd's replies are one object whose
# arrays hold flat objects, so splitting at "},{" gives one flat object per
# line, and a field is a sed away.

# Splits the JSON reply on stdin into one line per array element.
rig_jsplit() { { tr -d '\n'; echo; } | sed 's/}[[:space:]]*,[[:space:]]*{/}\n{/g'; }

# Prints the value of "FIELD" of each input line that has it: strings
# unquoted (escapes kept), numbers, true/false/null as written.
rig_jval() {
	sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*\("\(\([^"\\]\|\\.\)*\)"\|\([^,}"[:space:]]*\)\).*/\2\4/p'
}

# Prints FIELD of backend NAME from `lbctl --json backends` on NODE.
rig_backend_field() {
	rig_lbctl "$1" --json backends 2>/dev/null | rig_jsplit |
		grep "\"name\"[[:space:]]*:[[:space:]]*\"$2\"" | rig_jval "$3"
}

rig_backend_state() { rig_backend_field "$1" "$2" state; }

# True when backend NAME on NODE is in STATE.
rig_backend_is() { [ "$(rig_backend_state "$1" "$2")" = "$3" ]; }

# True when both backends are up on every NODE given.
rig_backends_up() {
	local n b
	for n in "$@"; do
		for b in FTP_SVR1 FTP_SVR2; do
			rig_backend_is "$n" "$b" up || return 1
		done
	done
}

# Sum of the backends' active connections on NODE.
rig_active_sum() {
	rig_lbctl "$1" --json backends 2>/dev/null | rig_jsplit | rig_jval active |
		awk '{ n += $1 } END { print n + 0 }'
}

# Prints the sticky backend of client IP on NODE ("" when none).
rig_sticky_of() {
	rig_lbctl "$1" --json sticky get "$2" 2>/dev/null | rig_jval backend
}

# Number of entries in NODE's sticky list (every page of it: one JSON line each).
rig_sticky_count() {
	rig_lbctl "$1" --json sticky list 2>/dev/null | grep -o '"client"' | wc -l
}

# ------------------------------------------------------------ clients

# curl options of the rig: self-signed cert, bounded, TLS capped.
RIG_CURL_OPTS=(-s -S -k --max-time 30 --connect-timeout 5 --tls-max "$RIG_TLS_MAX")

# Fetches PATH from HOST over explicit (ftp://, AUTH TLS) or implicit
# (ftps://) FTPS from client node NODE.  Extra curl args follow.
# Usage: rig_curl NODE explicit|implicit HOST PATH [curl args...]
rig_curl() {
	local node=$1 mode=$2 host=$3 path=$4; shift 4
	local url
	case $mode in
	explicit) url=ftp://$(rig_url_host "$host")/$path; set -- --ssl-reqd "$@" ;;
	implicit) url=ftps://$(rig_url_host "$host")/$path ;;
	*) rig_die "rig_curl: mode $mode" ;;
	esac
	rig_exec "$node" curl "${RIG_CURL_OPTS[@]}" "$@" "$url"
}

# Runs lftp commands in NODE against HOST over explicit (ftp://, AUTH TLS
# forced, data protected) or implicit (ftps://) FTPS, bounded.
# Usage: rig_lftp NODE explicit|implicit HOST "CMDS"
rig_lftp() {
	local node=$1 mode=$2 host=$3 cmds=$4 url prio=
	[ "$mode" = implicit ] && url=ftps://$(rig_url_host "$host") || url=ftp://$(rig_url_host "$host")
	# lftp uses GnuTLS: the version cap is a priority string.
	[ "$RIG_TLS_MAX" = 1.2 ] && prio='set ssl:priority "NORMAL:-VERS-TLS1.3";'
	rig_exec "$node" timeout 30 lftp -c "$prio set ssl:verify-certificate no; \
set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ftp:passive-mode yes; \
set net:max-retries 1; set net:timeout 5; set net:reconnect-interval-base 1; \
open -u anonymous, $url; $cmds"
}

# Runs the rig's python client in NODE.  Usage: rig_py NODE ARGS...
rig_py() {
	local node=$1; shift
	rig_exec "$node" python3 "$RIG_SRC/ftpsclient.py" --tls-max "$RIG_TLS_MAX" "$@"
}

# ------------------------------------------------------------ whole rig

# Builds the topology: switch, clients c1..cN (N = $1, default RIG_CLIENTS
# or 2), ftp1, ftp2 with vsftpd, and the lbd nodes of RIG_LB_NODES
# (default "lb1": standalone; "lb1 lb2": a pair sharing a cluster key).
# lbd is not started when RIG_NO_LBD=1.  Returns once the first node holds
# the VIP and every node sees both backends up.
rig_up() {
	local nclients=${1:-${RIG_CLIENTS:-2}}
	local lbs
	read -ra lbs <<<"${RIG_LB_NODES:-lb1}"
	local n
	rig_init
	rig_switch_up
	rig_clients_up "$nclients" "${RIG_EXTRA_ADDRS:-0}"
	for n in "${lbs[@]}"; do
		rig_node_add "$n" "${RIG_ADDR[$n]}"
	done
	for n in ftp1 ftp2; do
		rig_node_add "$n" "${RIG_ADDR[$n]}"
		rig_ftp_setup "$n"
		rig_ftp_start "$n"
	done
	RIG_BIG_SHA=$(cat "$RIG_DIR/big.sha256")
	[ "${RIG_NO_LBD:-0}" = 1 ] && return 0
	if [ ${#lbs[@]} = 2 ]; then
		rig_cluster_key
		rig_lb_conf "${lbs[0]}" "${lbs[1]}"
		rig_lb_conf "${lbs[1]}" "${lbs[0]}"
	else
		rig_lb_conf "${lbs[0]}"
	fi
	for n in "${lbs[@]}"; do
		rig_lb_start "$n"
	done
	rig_lb_wait_ready "${lbs[0]}"
	for n in "${lbs[@]:1}"; do
		rig_lb_wait_ready "$n" novip
	done
}

# The pair's shared key, made by `lbd --genkey`.
rig_cluster_key() {
	[ -f "$RIG_DIR/cluster.key" ] && return 0
	(umask 077 && "$RIG_LBD" --genkey >"$RIG_DIR/cluster.key") ||
		rig_die "lbd --genkey failed"
}

# Waits until NODE holds the VIP (unless $2 = novip) and sees both
# backends up.
rig_lb_wait_ready() {
	local node=$1 b
	if [ "${2:-}" != novip ]; then
		rig_wait 5000 _rig_vip_on "$node" || rig_die "$node did not add the VIP $RIG_VIP"
	fi
	for b in FTP_SVR1 FTP_SVR2; do
		rig_wait 10000 rig_backend_is "$node" "$b" up ||
			rig_die "$b not up on $node: $(rig_lbctl "$node" backends 2>&1)"
	done
}

_rig_vip_on() {
	local a
	a=$(ip -n "$(rig_ns "$1")" -o addr show dev eth0 2>/dev/null)
	[[ $a == *" $RIG_VIP/"* ]]
}

# ------------------------------------------------------------ HA pair

# The probe's period.  Each attempt is a vsftpd session (two forks and a
# chroot), about 20 ms of CPU on this project's 2-vCPU machines where fork
# is slow: at 10 ms the probe alone saturates both CPUs (measured: 100 %
# busy, greetings past 250 ms) and distorts what it measures; at 20 ms it
# takes about half.  RIG_PROBE_INTERVAL_MS=10 on a bigger machine.
RIG_PROBE_INTERVAL_MS=${RIG_PROBE_INTERVAL_MS:-20}
# The probe's deadline per attempt.  It does not change the outages it
# measures (from the start of the last success to the start of the next);
# 250 ms and not 50 because vsftpd's greeting alone takes 6-25 ms on an
# idle 2-CPU machine, and 100 sessions/s push its tail past 50 ms.
RIG_PROBE_TIMEOUT_MS=${RIG_PROBE_TIMEOUT_MS:-250}
RIG_RESTART_SEC=${RIG_RESTART_SEC:-1}			# systemd RestartSec of deploy/lbd.service

# Flattens the JSON on stdin into "path=value" lines (jflat.awk).
rig_jflat() { awk -f "$RIG_SRC/jflat.awk"; }

# Prints node NODE's `lbctl --json status`, flattened; fails (no output)
# when the daemon does not answer.
rig_status() {
	local j
	j=$(rig_lbctl "$1" --json status 2>/dev/null) || return 1
	rig_jflat <<<"$j"
}

# Prints KEY's value from a flattened status (empty when absent).
# Usage: rig_sval "$flat" peer.role
rig_sval() {
	awk -v k="$2" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' <<<"$1"
}

# Role NODE's lbd reports, or "down" when it does not answer.
rig_role() {
	local -A st
	rig_status_into "$1" st || { echo down; return 0; }
	echo "${st[role]}"
}

# True when NODE's lbd reports ROLE (one lbctl, no subshell of ours).
rig_role_is() {
	local -A st
	rig_status_into "$1" st && [ "${st[role]}" = "$2" ]
}

# The lbd nodes of this rig, one per line.
rig_lb_nodes() { tr ' ' '\n' <<<"${RIG_LB_NODES:-lb1}" | grep .; }

# Prints the lb nodes that have the VIP on eth0, space separated.
rig_vip_holders() {
	local n out=
	for n in $(rig_lb_nodes); do
		_rig_vip_on "$n" 2>/dev/null && out="$out $n"
	done
	echo "${out# }"
}

# The other node of the pair.
rig_lb_other() { [ "$1" = lb1 ] && echo lb2 || echo lb1; }

# Loads NODE's `lbctl --json status` into the associative array named
# ARRAY (flattened keys: role, vip.held, peer.role, ha.replays, ...), with
# as few forks as possible: the pair's polls run every 10 ms.
# Fails (ARRAY empty) when the daemon does not answer.
rig_status_into() {
	local -n _st=$2
	local flat line
	_st=()
	if [ -x "$RIG_LBCTL" ]; then
		flat=$("$RIG_LBCTL" -s "$RIG_DIR/$1.sock" --json status 2>/dev/null | awk -f "$RIG_SRC/jflat.awk")
	else
		flat=$(rig_status "$1")
	fi
	[ -n "$flat" ] || return 1
	while IFS= read -r line; do
		_st[${line%%=*}]=${line#*=}
	done <<<"$flat"
}

# With RIG_WHY=1, says on stderr why the pair is not settled; fails.
_rig_why() { [ "${RIG_WHY:-0}" = 1 ] && echo "  not settled: $*" >&2; return 1; }

# Prints the MASTER's name when the pair is settled: exactly one node has
# the VIP on its interface, it reports MASTER with vip.held true, the
# other reports BACKUP with vip.held false, and each one's peer.role is
# the other's role.  Fails (saying why on stderr with RIG_WHY=1) otherwise.
rig_ha_master() {
	local -A s1 s2
	local v1=0 v2=0 m o r1 r2
	_rig_vip_on lb1 && v1=1
	_rig_vip_on lb2 && v2=1
	case $v1$v2 in
	10) m=lb1 o=lb2 ;;
	01) m=lb2 o=lb1 ;;
	*) _rig_why "VIP on lb1: $v1, on lb2: $v2"; return 1 ;;
	esac
	rig_status_into lb1 s1 || { _rig_why "lb1 does not answer"; return 1; }
	rig_status_into lb2 s2 || { _rig_why "lb2 does not answer"; return 1; }
	r1=${s1[role]} r2=${s2[role]}
	if [ $m = lb1 ]; then
		[ "$r1/$r2" = MASTER/BACKUP ] || { _rig_why "VIP on lb1, roles lb1 $r1 lb2 $r2"; return 1; }
		[ "${s1[vip.held]}/${s2[vip.held]}" = true/false ] ||
			{ _rig_why "vip.held lb1 ${s1[vip.held]} lb2 ${s2[vip.held]}"; return 1; }
	else
		[ "$r1/$r2" = BACKUP/MASTER ] || { _rig_why "VIP on lb2, roles lb1 $r1 lb2 $r2"; return 1; }
		[ "${s1[vip.held]}/${s2[vip.held]}" = false/true ] ||
			{ _rig_why "vip.held lb1 ${s1[vip.held]} lb2 ${s2[vip.held]}"; return 1; }
	fi
	[ "${s1[peer.role]}" = "$r2" ] || { _rig_why "lb1 says its peer is '${s1[peer.role]}', lb2 says $r2"; return 1; }
	[ "${s2[peer.role]}" = "$r1" ] || { _rig_why "lb2 says its peer is '${s2[peer.role]}', lb1 says $r1"; return 1; }
	echo "$m"
}

# True when the pair is settled with NODE as MASTER.
rig_ha_master_is() { [ "$(rig_ha_master 2>/dev/null)" = "$1" ]; }

# Polls every 10 ms (bounded by TIMEOUT_MS) until "$@" succeeds; a tighter
# rig_wait for HA timings.  RIG_WAITED_MS holds the time taken.
rig_wait_fast() {
	local timeout_ms=$1; shift
	local start now i
	start=$(rig_ms)
	for ((i = 0; i < timeout_ms; i++)); do
		if "$@" >/dev/null 2>&1; then
			RIG_WAITED_MS=$(( $(rig_ms) - start ))
			return 0
		fi
		now=$(rig_ms)
		((now - start >= timeout_ms)) && break
		sleep 0.01
	done
	RIG_WAITED_MS=$(( $(rig_ms) - start ))
	return 1
}

# Restarts node NODE's lbd the way systemd's Restart=always would after it
# died: the same command, RestartSec (1 s) after the death.  The caller
# killed it at DIED_MS (default now).
rig_lb_restart_systemd() {
	local node=$1 died=${2:-$(rig_ms)} left
	rig_kill "$node-lbd" KILL	# reaps the pid file; no-op if gone
	left=$(( died + RIG_RESTART_SEC * 1000 - $(rig_ms) ))
	((left > 0)) && sleep "$(awk -v m="$left" 'BEGIN { printf "%.3f", m / 1000 }')"
	rig_lb_start "$node"
}

# Prints the time (wall clock, ms) of NODE's first "role X -> ROLE" log
# line at or after SINCE_MS; fails when there is none.  The rig stamps lbd's
# log lines with the time of day as they arrive (rig_lb_start).
rig_role_event_ms() {
	local node=$1 role=$2 since=$3 sod since_dms ms d line
	printf -v sod '%(%H:%M:%S)T' $((since / 1000))
	since_dms=$(( ((10#${sod:0:2} * 60 + 10#${sod:3:2}) * 60 + 10#${sod:6:2}) * 1000 + since % 1000 ))
	while IFS= read -r line; do
		[[ $line =~ ^([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})[0-9]*\ lbd:\ role\ [A-Z]+\ -\>\ $role: ]] || continue
		ms=$(( ((10#${BASH_REMATCH[1]} * 60 + 10#${BASH_REMATCH[2]}) * 60 + 10#${BASH_REMATCH[3]}) * 1000 + 10#${BASH_REMATCH[4]} ))
		d=$(( (ms - since_dms + 86400000) % 86400000 ))
		((d < 43200000)) || continue	# earlier than SINCE
		echo $((since + d))
		return 0
	done < <(grep ' lbd: role ' "$RIG_DIR/$node.log" 2>/dev/null)
	return 1
}

# The 1-minute load average, for figures: HA timings on a busy machine
# are not those of an idle one.
rig_load() { local l; read -r l _ </proc/loadavg; echo "$l"; }

# Builds the probe (probe.c) into the run's dir once.
rig_probe_build() {
	[ -x "$RIG_DIR/probe" ] && return 0
	cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$RIG_DIR/probe" "$RIG_SRC/probe.c" ||
		rig_die "could not build tests/rig/probe.c"
}

# Starts the outage probe in client NODE against VIP:21 for at most
# SECONDS, recorded as NAME, and waits (5 s) for its first success.
rig_probe_start() {
	local node=$1 name=$2 secs=$3
	rig_probe_build
	rm -f "$RIG_DIR/$name.ready" "$RIG_DIR/$name.out"
	rig_bg "$node" "$name" "$RIG_DIR/$name.out" "$RIG_DIR/probe" -a "$RIG_VIP" -p 21 \
		-i "$RIG_PROBE_INTERVAL_MS" -t "$RIG_PROBE_TIMEOUT_MS" -d "$secs" \
		-r "$RIG_DIR/$name.ready" -v
	rig_wait 5000 test -f "$RIG_DIR/$name.ready" ||
		{ rig_log "  probe $name: no success in 5 s: $(tail -3 "$RIG_DIR/$name.out")"; return 1; }
}

# Stops probe NAME (SIGTERM; it prints its summary) and prints the
# summary line "probe: attempts=... outage_max_ms=...".
rig_probe_stop() {
	local name=$1 i
	rig_kill "$name" TERM
	for ((i = 0; i < 20; i++)); do
		grep -q '^probe:' "$RIG_DIR/$name.out" 2>/dev/null && break
		sleep 0.05
	done
	grep '^probe:' "$RIG_DIR/$name.out" | tail -1
}

# Prints KEY's value from a probe summary line.  Usage: rig_pval "$line" failures
rig_pval() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# The failures probe NAME saw, "kind@T" on one line (at most 12), T in ms
# since T0_MS (wall clock; default: since the probe started).
rig_probe_fails() {
	awk -v t0="${2:-}" '$1 == "fail" && n++ < 12 {
		printf "%s%s@%d", (n > 1 ? "," : ""), $3, (t0 != "" ? $4 - t0 : $2) }
	END { if (n > 12) printf ",... (%d in all)", n; print "" }' "$RIG_DIR/$1.out" 2>/dev/null
}

# Runs the heartbeat tool (hbtool.py) in NODE.  Usage: rig_hb NODE ARGS...
rig_hb() {
	local node=$1; shift
	rig_exec "$node" timeout 30 python3 "$RIG_SRC/hbtool.py" "$@"
}

# ------------------------------------------------------------ small checks

# True when $1 is one of the rig's real server names.
rig_is_server() { [ "$1" = FTP_SVR1 ] || [ "$1" = FTP_SVR2 ]; }
