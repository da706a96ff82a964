#!/bin/bash
# test-install.sh - runs `make install` into a scratch DESTDIR and checks
# what an administrator gets: every file, the installed lbd accepting the
# installed example configs, man pages that render cleanly, a unit that
# systemd-analyze accepts and scores <= 2.0 (`systemd-analyze security`),
# the sysusers entry, no clobbered configs, the VIP stop hook, and (as
# root, in a network namespace of its own) lbd running with exactly the
# unit's user model and capabilities, its key and socket permissions, and
# only system calls the unit's SystemCallFilter allows (strace).
#
# Usage: tests/install/test-install.sh      (from anywhere; `make test-install`)
# Prints ok:/FAIL:/skip: lines and "N passed, M failed"; exits 1 on failure.
# Parts needing a tool that is absent (groff, man, systemd-analyze,
# systemd-sysusers, nft, setpriv, strace, vsftpd) or root are skipped, not failed.

set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
PASS=0
FAIL=0
T=$(mktemp -d /tmp/lbd-install.XXXXXX)
D=$T/root			# the DESTDIR
NS=""				# network namespace, when created
LBD_PID=""			# lbd started by the capability test
STRACE_PID=""			# strace of the system-call test
TI_VERSION=$(awk -F'[()]' 'NR == 1 { print $2 }' "$TOP/debian/changelog") # the one version source
SECURITY_MAX=2.0		# highest `systemd-analyze security` exposure accepted

cleanup() {
	if [ -n "$LBD_PID" ]; then
		kill -9 "$LBD_PID" 2>/dev/null
		wait "$LBD_PID" 2>/dev/null
	fi
	if [ -n "$STRACE_PID" ]; then
		kill -9 "$STRACE_PID" 2>/dev/null
		wait "$STRACE_PID" 2>/dev/null
	fi
	[ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok: $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
skip() { echo "skip: $*"; }
# check MSG CMD...: ok when CMD succeeds.
check() {
	local msg=$1
	shift
	if "$@"; then ok "$msg"; else bad "$msg"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }

# Polls CMD every 50 ms for up to MS milliseconds.  Returns: CMD's success.
wait_for() {
	local ms=$1 i
	shift
	for ((i = 0; i < ms / 50; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	"$@"
}

# syscalls NAME...: the system calls named, @groups expanded (nested too),
# one a line, as systemd-analyze syscall-filter lists them.
syscalls() {
	local n m
	for n in "$@"; do
		case $n in
		@*)
			for m in $(systemd-analyze syscall-filter "$n" | sed -e '1d' -e '/^ *#/d'); do
				syscalls "$m"
			done
			;;
		*) echo "$n" ;;
		esac
	done
}

# man_file SECTION/PAGE: the installed page under $D, compressed (.gz, as
# the .deb has it) or not.
man_file() {
	local p=$D/usr/share/man/$1
	[ -e "$p" ] || p=$p.gz
	echo "$p"
}

# ------------------------------------------------------------ installed lbd
# The installed lbd and lbctl on the installed configs and man page.
ti_installed_lbd() {
	for c in lb1 lb2 standalone; do
		out=$("$D/usr/sbin/lbd" -n -c "$D/etc/lbd/$c.conf" 2>&1)
		check "installed lbd -n on /etc/lbd/$c.conf: $out" test "$out" = "configuration OK"
	done
	out=$("$D/usr/sbin/lbctl" --help 2>&1)
	check "installed lbctl --help" grep -q "^usage: lbctl" <<<"$out"
	out=$("$D/usr/sbin/lbd" --version 2>&1)
	check "installed lbd --version: $out" test "$out" = "lbd $TI_VERSION"
	out=$("$D/usr/sbin/lbctl" --version 2>&1)
	check "installed lbctl --version: $out" test "$out" = "lbctl $TI_VERSION"
	key=$("$D/usr/sbin/lbd" --genkey)
	check "lbd --genkey prints a 44-character base64 key" \
		grep -Eq '^[A-Za-z0-9+/]{43}=$' <<<"$key"

	# The example in lbd.conf(5) must be a valid config.
	if have groff; then
		zcat -f "$(man_file man5/lbd.conf.5)" | sed -n '/^\.SH EXAMPLE/,/^\.SH /p' |
			sed -n '/^\.nf/,/^\.fi/p' | sed -e '/^\./d' -e 's/\\-/-/g' >"$T/man-example.conf"
		out=$("$D/usr/sbin/lbd" -n -c "$T/man-example.conf" 2>&1)
		check "the example of lbd.conf(5) is valid: $out" test "$out" = "configuration OK"
	fi
}

# ------------------------------------------------------------ unit file
# The unit file U (default: make install's): paths, settings, verify, security score.
ti_unit() {
	U=$D/usr/lib/systemd/system/lbd.service
	check "unit paths rewritten for PREFIX=/usr" \
		grep -q '^ExecStart=/usr/sbin/lbd -c /etc/lbd/lbd.conf$' "$U"
	check "unit: no /usr/local left outside comments" bash -c "! grep -v '^#' '$U' | grep -q /usr/local"
	check "unit: ExecStopPost is the installed stop hook" \
		grep -q '^ExecStopPost=/usr/libexec/lbd/lbd-release-vip -c /etc/lbd/lbd.conf$' "$U"
	for kv in ConditionPathExists=/etc/lbd/lbd.conf Type=notify NotifyAccess=main WatchdogSec=10s 'ExecReload=/bin/kill -HUP $MAINPID' \
	    Restart=always User=lbd Group=lbdctl NoNewPrivileges=yes \
	    ProtectSystem=strict RuntimeDirectory=lbd RuntimeDirectoryMode=0755 \
	    StateDirectory=lbd StateDirectoryMode=0700 UMask=0077 ProtectProc=invisible \
	    SystemCallFilter=@system-service SystemCallFilter=~@privileged \
	    LimitNOFILE=65536 LimitRTPRIO=10 \
	    'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' \
	    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' \
	    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET'; do
		check "unit: $kv" grep -qx "$kv" "$U"
	done
	if have systemd-analyze; then
		# verify checks that Exec paths exist: point them into DESTDIR; any
		# output (unknown key, bad value, missing man page) counts as failure.
		mkdir -p "$T/verify"
		sed -e "s|=/usr/sbin/|=$D/usr/sbin/|" -e "s|=/usr/libexec/|=$D/usr/libexec/|" \
			"$U" >"$T/verify/lbd.service"
		out=$(MANPATH=$D/usr/share/man systemd-analyze verify "$T/verify/lbd.service" 2>&1)
		rc=$?
		[ -n "$out" ] && echo "$out"
		check "systemd-analyze verify lbd.service (exit 0, no output)" test $rc -eq 0 -a -z "$out"
		# --offline (systemd 250+) reads the unit file, not a running manager.
		out=$(systemd-analyze security --offline=yes "$T/verify/lbd.service" 2>&1)
		score=$(sed -n 's/.*Overall exposure level for lbd.service: \([0-9][0-9]*\.[0-9]\).*/\1/p' <<<"$out")
		if [ -z "$score" ]; then
			echo "$out" | tail -5
			bad "systemd-analyze security --offline=yes gives an exposure level"
		elif awk -v s="$score" -v m="$SECURITY_MAX" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
			ok "systemd-analyze security lbd.service: exposure $score <= $SECURITY_MAX"
		else
			grep '✗' <<<"$out"
			bad "systemd-analyze security lbd.service: exposure $score <= $SECURITY_MAX"
		fi
	else
		skip "systemd-analyze not installed"
	fi
}

# ------------------------------------------------------------ sysusers
# The sysusers entry makes user lbd and groups lbd, lbdctl (in a scratch root).
ti_sysusers() {
	if have systemd-sysusers; then
		mkdir -p "$T/sysroot/etc"
		touch "$T/sysroot/etc/passwd" "$T/sysroot/etc/group" "$T/sysroot/etc/shadow" \
			"$T/sysroot/etc/gshadow"
		systemd-sysusers --root="$T/sysroot" "$D/usr/lib/sysusers.d/lbd.conf" >/dev/null 2>&1
		check "systemd-sysusers creates user and group lbd" \
			bash -c "grep -q '^lbd:' '$T/sysroot/etc/passwd' && grep -q '^lbd:' '$T/sysroot/etc/group'"
		check "systemd-sysusers creates group lbdctl (the control socket's)" \
			grep -q '^lbdctl:' "$T/sysroot/etc/group"
	else
		skip "systemd-sysusers not installed"
	fi
}

# ------------------------------------------------------------ man pages
# The man pages render without warnings.
ti_man() {
	for m in man8/lbd.8 man8/lbctl.8 man5/lbd.conf.5; do
		p=$(man_file "$m")
		if have groff; then
			out=$(zcat -f "$p" | groff -man -Tutf8 -ww -z 2>&1)
			check "groff -ww renders $m without warnings" test -z "$out"
		fi
		if have man; then
			out=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
			check "man -l renders $m without warnings" test -z "$out"
			n=$(MANWIDTH=80 man -l "$p" 2>/dev/null | wc -l)
			check "man -l $m has text ($n lines)" test "$n" -gt 20
		fi
		if ! have groff && ! have man; then
			skip "neither groff nor man installed: $m not rendered"
		fi
	done
}

# ------------------------------------------------------------ stop hook: parsing
# The stop hook reads the VIP from the installed configs, and odd ones.
ti_hook_parse() {
	H=$D/usr/libexec/lbd/lbd-release-vip
	out=$("$H" -p -c "$D/etc/lbd/lb1.conf" 2>&1)
	check "stop hook reads lb1.conf: $out" test "$out" = "192.168.86.87/24 eth0"
	cat >"$T/odd.conf" <<-'EOF'
	/* vip = { address = "10.9.9.9/8"; interface = "bad0"; }; */
	# vip = { address = "10.8.8.8/8"; interface = "bad1"; };
	services = ( { name = "S"; source = "vip"; ports = [ 21 ];
	  backends = ( { name = "B"; address = "10.0.0.50"; } ); } );  // vip = { }
	vip:{interface:"ens192" ;   address :"10.0.0.87/24" # the VIP
	};
	EOF
	out=$("$H" -p -c "$T/odd.conf" 2>&1)
	check "stop hook skips comments, takes ':' and any order: $out" test "$out" = "10.0.0.87/24 ens192"
	printf 'node = { name = "x"; };\n' >"$T/novip.conf"
	"$H" -p -c "$T/novip.conf" >/dev/null 2>&1
	check "stop hook: config without vip group exits 1" test $? -eq 1
	"$H" -c "$T/does-not-exist.conf" >/dev/null 2>&1
	check "stop hook: missing config exits 1" test $? -eq 1
	"$H" 192.168.86.87 eth0 >/dev/null 2>&1
	check "stop hook: VIP without /prefix exits 1" test $? -eq 1
	"$H" 192.168.86.87/24 no-such-if0 >/dev/null 2>&1
	check "stop hook: absent interface exits 0" test $? -eq 0
}

# ------------------------------------------------------------ the unit's privilege model
# The installed lbd with the unit's user model, in a namespace of its own.
ti_privileges() {
	# lbd as an unprivileged user with exactly the unit's three capabilities,
	# in a network namespace of our own: it must bind 21/990, add the VIP and
	# read its own 0600 key (and refuse a group-readable one), give the control
	# socket to its group (the unit's Group=lbdctl, stood in for by RUN_GID)
	# and no one else; after SIGKILL the stop hook, with only CAP_NET_ADMIN,
	# must remove the VIP.  Then, under strace, lbd must make no system call
	# that the unit's SystemCallFilter refuses.
	CAPS=+net_admin,+net_raw,+net_bind_service
	if [ "$(id -u)" -ne 0 ]; then
		skip "not root: privilege-model test"
	elif ! have setpriv || ! have ss || ! ip netns list >/dev/null 2>&1; then
		skip "setpriv, ss or ip netns missing: privilege-model test"
	else
		NS=lbdinst$$
		ip netns add "$NS"
		ip -n "$NS" link set lo up
		ip -n "$NS" link add lbdt0 type veth peer name lbdt1
		ip -n "$NS" addr add 192.168.86.2/24 dev lbdt0
		ip -n "$NS" link set lbdt0 up
		ip -n "$NS" link set lbdt1 up
		# The unit's User=/Group=: nobody here, the package's lbd:lbdctl in test-package.sh.
		RUN_UID=${TI_RUN_UID:-65534}
		RUN_GID=${TI_RUN_GID:-$(id -g nobody 2>/dev/null || echo 65534)}
		CTL_GROUP=$(getent group "$RUN_GID" | cut -d: -f1)	# as lbdctl
		OTHER_UID=65533			# an lbctl user that is not lbd
		# /run/lbd as RuntimeDirectory=lbd makes it: owned by user:group, 0755.
		mkdir -m 0755 "$T/cap"
		mkdir -m 0755 "$T/cap/run"
		chown "$RUN_UID:$RUN_GID" "$T/cap/run"
		chmod 0755 "$T"
		"$D/usr/sbin/lbd" --genkey >"$T/cap/cluster.key"
		chown "$RUN_UID:$RUN_GID" "$T/cap/cluster.key"
		chmod 0600 "$T/cap/cluster.key"
		sed -e "s|\"eth0\"|\"lbdt0\"|" -e "s|/run/lbd/lbd.sock|$T/cap/run/lbd.sock|" \
			-e "s|/etc/lbd/cluster.key|$T/cap/cluster.key|" \
			-e "s|advert_interval_ms = 100;|advert_interval_ms = 50;|" \
			-e "s|# group          = \"lbdctl\";|group = \"$CTL_GROUP\";|" \
			"$D/usr/share/doc/lbd/examples/lb1.conf" >"$T/cap/lbd.conf"
		chmod 0644 "$T/cap/lbd.conf"
		# drop CAPS CMD...: runs CMD in the namespace as RUN_UID with only
		# CAPS (e.g. +net_admin; "" for none), as systemd's User= and
		# AmbientCapabilities=/CapabilityBoundingSet= would.
		drop() {
			local caps=-all${1:+,$1}
			shift
			ip netns exec "$NS" setpriv --reuid=$RUN_UID --regid="$RUN_GID" --clear-groups \
				--inh-caps="$caps" --ambient-caps="$caps" \
				--bounding-set="$caps" --no-new-privs "$@"
		}
		vip_on() { ip -n "$NS" -o -4 addr show dev lbdt0 | grep -q ' 192.168.86.87/24 '; }
		listening() { ip netns exec "$NS" ss -ltnH | grep -q "192.168.86.87:$1 "; }
		lbd_alive() { kill -0 "$LBD_PID" 2>/dev/null; }

		# as_other GROUPS CMD...: runs CMD as OTHER_UID in GROUPS ("" none).
		as_other() {
			local g=--clear-groups
			[ -n "$1" ] && g=--groups=$1
			shift
			ip netns exec "$NS" setpriv --reuid=$OTHER_UID --regid=$OTHER_UID "$g" \
				--no-new-privs "$@"
		}

		# The documented root:lbd 0640 of earlier versions: refused, with the fix.
		chmod 0640 "$T/cap/cluster.key"
		out=$(cd / && umask 077 && drop $CAPS timeout 20 "$D/usr/sbin/lbd" -c "$T/cap/lbd.conf" 2>&1)
		rc=$?
		want="run \`chown $(id -un $RUN_UID): $T/cap/cluster.key && chmod 600 $T/cap/cluster.key\`"
		if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qF "mode 0640 lets its group read" <<<"$out" &&
		    grep -qF "$want" <<<"$out"; then
			ok "lbd refuses a group-readable key (exit $rc) and says: $want"
		else
			echo "$out" | tail -5
			bad "lbd refuses a group-readable key (exit $rc) and says: $want"
		fi
		chmod 0600 "$T/cap/cluster.key"

		# Not through drop(): $! must be lbd itself (ip netns exec and setpriv
		# exec it), not a subshell, so that kill -9 reaches it.  umask as UMask=.
		umask 077
		ip netns exec "$NS" setpriv --reuid=$RUN_UID --regid="$RUN_GID" --clear-groups \
			--inh-caps=-all,$CAPS --ambient-caps=-all,$CAPS --bounding-set=-all,$CAPS \
			--no-new-privs "$D/usr/sbin/lbd" -c "$T/cap/lbd.conf" >"$T/cap/lbd.log" 2>&1 &
		LBD_PID=$!
		umask 022
		wait_for 5000 vip_on
		check "lbd as uid $RUN_UID with the unit's 3 capabilities adds the VIP" vip_on
		check "... listens on VIP:21" listening 21
		check "... listens on VIP:990" listening 990
		check "... listens on VIP:1052" listening 1052
		check "... reads the cluster key (its own, mode 0600)" \
			bash -c "! grep -q 'cluster key' '$T/cap/lbd.log'"
		out=$(drop "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
		check "... lbctl as the same user (no capabilities) gets its status" \
			grep -q '^role: *MASTER' <<<"$out"
		check "... status shows lbd's version (the peer's not heard)" \
			grep -qx "version: *$TI_VERSION here, lb2 not heard yet" <<<"$out"
		out=$(drop "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" --json status 2>&1)
		check "... status JSON has \"version\": \"$TI_VERSION\"" \
			grep -qE "\"version\": ?\"$TI_VERSION\"}\$" <<<"$out"
		out=$(stat -c '%a %U %G' "$T/cap/run/lbd.sock" 2>&1)
		check "... control socket is 0660, lbd's user, group $CTL_GROUP (under umask 077): $out" \
			test "$out" = "660 $(id -un $RUN_UID) $CTL_GROUP"
		out=$(as_other "$RUN_GID" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
		check "... lbctl as another user in group $CTL_GROUP gets its status" \
			grep -q '^role: *MASTER' <<<"$out"
		out=$(as_other "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
		check "... lbctl as another user in no group is refused, told usermod -aG lbdctl: $out" \
			grep -q 'Permission denied.*usermod -aG lbdctl' <<<"$out"
		check "... lbd is still running" lbd_alive
		check "... and it is the capability-limited process" \
			grep -q "^CapEff:[[:space:]]*0000000000003400$" "/proc/$LBD_PID/status"
		kill -9 "$LBD_PID"
		wait "$LBD_PID" 2>/dev/null
		LBD_PID=""
		check "after SIGKILL the VIP is still on the interface (no cleanup)" vip_on
		# The mirroring fence a crashed lbd leaves (fence.c's table, stood in
		# for here): the hook lifts it only after the VIP is gone.
		fence_on() { ip netns exec "$NS" nft list table inet lbd_fence >/dev/null 2>&1; }
		fence_put() {
			ip netns exec "$NS" nft -f - <<-'EOF'
			table inet lbd_fence {
				counter dropped { }
				set fenced4 {
					type ipv4_addr . inet_service . ipv4_addr . inet_service
					flags dynamic,timeout
					timeout 2h
					size 65536
				}
				set fenced6 {
					type ipv6_addr . inet_service . ipv6_addr . inet_service
					flags dynamic,timeout
					timeout 2h
					size 65536
				}
				chain output {
					type filter hook output priority raw; policy accept;
					meta l4proto tcp meta mark vmap { 0x000001bd : goto fenced, 0x000001be : goto released }
					tcp flags & rst != 0 ip saddr . tcp sport . ip daddr . tcp dport @fenced4 counter name "dropped" drop
					tcp flags & rst != 0 ip6 saddr . tcp sport . ip6 daddr . tcp dport @fenced6 counter name "dropped" drop
				}
				chain fenced {
					meta nfproto ipv4 update @fenced4 { ip saddr . tcp sport . ip daddr . tcp dport }
					meta nfproto ipv6 update @fenced6 { ip6 saddr . tcp sport . ip6 daddr . tcp dport }
					tcp flags & (fin | rst) != 0 counter name "dropped" drop
				}
				chain released {
					meta nfproto ipv4 delete @fenced4 { ip saddr . tcp sport . ip daddr . tcp dport }
					meta nfproto ipv6 delete @fenced6 { ip6 saddr . tcp sport . ip6 daddr . tcp dport }
				}
			}
			EOF
		}
		# An older lbd's fence: one rule, the mark in it.
		fence_put_old() {
			ip netns exec "$NS" nft -f - <<-'EOF'
			table inet lbd_fence {
				counter dropped { }
				chain output {
					type filter hook output priority raw; policy accept;
					tcp flags & (fin | rst) != 0 meta mark 0x1bd0 counter name "dropped" drop
				}
			}
			EOF
		}
		have nft && fence_put
		if have nft && fence_on; then
			out=$(drop +net_admin "$H" -n -c "$T/cap/lbd.conf" 2>&1)
			want="would run: ip addr del 192.168.86.87/24 dev lbdt0
would run: ss -K -t -a fwmark = 0x000001bd
would run: nft delete table inet lbd_fence"
			check "stop hook -n: the VIP, then the fence's marked sockets (the fence mark, not the release mark), then the fence: $out" \
				test "$out" = "$want"
			vip_on && fence_on
			check "... and changes nothing" test $? -eq 0
			ip netns exec "$NS" nft delete table inet lbd_fence
			fence_put_old
			out=$(drop +net_admin "$H" -n -c "$T/cap/lbd.conf" 2>&1)
			check "stop hook -n reads an older lbd's fence mark too: $out" \
				grep -qx "would run: ss -K -t -a fwmark = 0x00001bd0" <<<"$out"
			ip netns exec "$NS" nft delete table inet lbd_fence
			fence_put
		else
			skip "nft missing: the stop hook's fence part not checked"
		fi
		out=$(drop +net_admin "$H" -c "$T/cap/lbd.conf" 2>&1)
		rc=$?
		check "stop hook with only CAP_NET_ADMIN removes the VIP: $out" \
			bash -c "[ $rc -eq 0 ] && ! ip -n '$NS' -o -4 addr show dev lbdt0 | grep -q ' 192.168.86.87/'"
		if have nft; then
			! fence_on && grep -q 'removed VIP' <<<"$(sed -n 1p <<<"$out")" &&
				grep -q 'removed nftables table inet lbd_fence' <<<"$(sed -n 2p <<<"$out")"
			check "... then the fence (in that order)" test $? -eq 0
		fi
		out=$(drop +net_admin "$H" -c "$T/cap/lbd.conf" 2>&1)
		check "stop hook again (VIP absent): exit 0, silent" test $? -eq 0 -a -z "$out"
		if have nft; then
			# The VIP under another prefix length stays (exit 1): so does the fence.
			ip -n "$NS" addr add 192.168.86.87/25 dev lbdt0
			fence_put
			out=$(drop +net_admin "$H" -c "$T/cap/lbd.conf" 2>&1)
			rc=$?
			fence_on
			check "stop hook that cannot remove the VIP (exit $rc) keeps the fence: $out" \
				test $rc -eq 1 -a $? -eq 0
			ip -n "$NS" addr del 192.168.86.87/25 dev lbdt0
			ip netns exec "$NS" nft delete table inet lbd_fence
		fi

		# The unit's SystemCallFilter (systemd applies it; we cannot here):
		# every call lbd makes from its exec to its exit, under strace, must
		# be in the set the unit's SystemCallFilter= lines allow.  This run
		# also has a control.readonly_group (RO_GROUP, any other group here).
		RO_GROUP=$(getent group | awk -F: -v g="$RUN_GID" '$3 != 0 && $3 != g { print $1; exit }')
		RO_GID=$(getent group "$RO_GROUP" | cut -d: -f3)
		sed -e "s|^\( *group = \"$CTL_GROUP\";\)|\1 readonly_group = \"$RO_GROUP\";|" \
			"$T/cap/lbd.conf" >"$T/cap/lbd-ro.conf"
		chmod 0644 "$T/cap/lbd-ro.conf"
		if have strace && have systemd-analyze; then
			: >"$T/allowed"
			while IFS= read -r v; do
				v=${v#SystemCallFilter=}
				if [ "${v#\~}" != "$v" ]; then
					syscalls ${v#\~} | sort -u >"$T/drop"
					sort -u "$T/allowed" | comm -23 - "$T/drop" >"$T/allowed.new"
				else
					{ cat "$T/allowed"; syscalls $v; } | sort -u >"$T/allowed.new"
				fi
				mv "$T/allowed.new" "$T/allowed"
			done < <(grep '^SystemCallFilter=' "$U")
			umask 077
			ip netns exec "$NS" strace -f -qq -o "$T/strace" setpriv --reuid=$RUN_UID \
				--regid="$RUN_GID" --clear-groups --inh-caps=-all,$CAPS \
				--ambient-caps=-all,$CAPS --bounding-set=-all,$CAPS --no-new-privs \
				"$D/usr/sbin/lbd" -c "$T/cap/lbd-ro.conf" >"$T/cap/lbd-strace.log" 2>&1 &
			STRACE_PID=$!
			umask 022
			wait_for 10000 vip_on
			out=$(drop "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
			check "lbd under strace adds the VIP and answers lbctl status" \
				bash -c "grep -q '^role: *MASTER' <<<\"\$1\"" _ "$out"
			drop "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" sticky list >/dev/null 2>&1
			out=$(stat -c '%a %G' "$T/cap/run/lbd.sock" 2>&1)
			check "... with readonly_group the socket is 0666, group $CTL_GROUP: $out" \
				test "$out" = "666 $CTL_GROUP"
			out=$(as_other "$RO_GID" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
			check "... a readonly_group ($RO_GROUP) member gets the status" \
				grep -q '^role: *MASTER' <<<"$out"
			out=$(as_other "$RO_GID" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" sticky flush 2>&1)
			check "... but not sticky flush: $out" \
				grep -qF "\"sticky flush\" needs group $CTL_GROUP; group $RO_GROUP may run only" <<<"$out"
			out=$(as_other "" "$D/usr/sbin/lbctl" -s "$T/cap/run/lbd.sock" status 2>&1)
			check "... a user in neither group gets nothing: $out" \
				grep -qF "permission denied: lbctl needs group $CTL_GROUP (every command) or $RO_GROUP" <<<"$out"
			# lbd is strace's child (setpriv execs it): SIGTERM, the normal stop.
			pid=$(ps -o pid= --ppid "$STRACE_PID" | tr -d ' ')
			[ -n "$pid" ] && kill -TERM "$pid"
			for ((i = 0; i < 200; i++)); do
				kill -0 "$STRACE_PID" 2>/dev/null || break
				sleep 0.05
			done
			wait "$STRACE_PID" 2>/dev/null
			STRACE_PID=""
			# Calls after lbd's execve, any thread; "<... x resumed>" lines name a call begun before.
			awk -v lbd="$D/usr/sbin/lbd" 'index($0, "execve(\"" lbd "\"") { on = 1; next }
				on && match($0, /^[0-9]+ +[a-z_0-9]+\(/) {
					s = substr($0, RSTART, RLENGTH - 1); sub(/^[0-9]+ +/, "", s); print s }' \
				"$T/strace" | sort -u >"$T/used"
			n=$(wc -l <"$T/used")
			denied=$(comm -23 "$T/used" "$T/allowed" | tr '\n' ' ')
			check "lbd made $n distinct system calls, none outside the unit's SystemCallFilter: ${denied:-none}" \
				test "$n" -gt 20 -a -z "$denied"
			check "... and exited on SIGTERM with the VIP removed" bash -c "! ip -n '$NS' -o -4 addr show dev lbdt0 | grep -q ' 192.168.86.87/'"
		else
			skip "strace or systemd-analyze missing: SystemCallFilter not checked"
		fi
		if [ "$FAIL" -gt 0 ]; then
			echo "--- lbd log"
			cat "$T/cap/lbd.log"
		fi

		# The vsftpd example must be accepted by Debian's vsftpd (3.0.3
		# refuses unknown options) and offer TLS.
		if have vsftpd && have openssl && have curl; then
			openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ftps.key" -out "$T/ftps.pem" \
				-days 1 -subj /CN=lbd-install-test >/dev/null 2>&1
			mkdir -p "$T/empty"
			sed -e 's|^listen_address=.*|listen_address=127.0.0.1|' \
				-e 's|^listen_port=.*|listen_port=2121|' \
				-e "s|/etc/ssl/certs/ftps.pem|$T/ftps.pem|" \
				-e "s|/etc/ssl/private/ftps.key|$T/ftps.key|" \
				-e "s|/var/run/vsftpd/empty|$T/empty|" \
				-e "s|/var/log/vsftpd.log|$T/vsftpd.log|" \
				"$D/usr/share/doc/lbd/examples/vsftpd-realserver.conf" >"$T/vsftpd.conf"
			ip netns exec "$NS" timeout 10 vsftpd "$T/vsftpd.conf" </dev/null >/dev/null 2>&1 &
			vpid=$!
			up() { ip netns exec "$NS" ss -ltnH | grep -q '127.0.0.1:2121 '; }
			wait_for 3000 up
			out=$(ip netns exec "$NS" curl -sv -k --ssl-reqd --max-time 5 \
				-u nobody:wrong ftp://127.0.0.1:2121/ 2>&1)
			check "vsftpd accepts vsftpd-realserver.conf and does AUTH TLS" \
				grep -q 'SSL connection using TLS' <<<"$out"
			kill "$vpid" 2>/dev/null
			wait "$vpid" 2>/dev/null
		else
			skip "vsftpd, openssl or curl missing: vsftpd example not run"
		fi
	fi
}

# ------------------------------------------------------------ nftables example
# The nftables example loads.
ti_nft_example() {
	if have nft && [ "$(id -u)" -eq 0 ]; then
		out=$(nft -c -f "$D/usr/share/doc/lbd/examples/nftables-lbd.conf" 2>&1)
		check "nft -c accepts nftables-lbd.conf $out" test -z "$out"
	else
		skip "nft not installed (or not root): nftables example not checked"
	fi
}

# The bash completion of lbctl: commands and keywords, and the backend
# and service names it reads from lbd (a stand-in lbctl answers here).
ti_completion() {
	local c=$D/usr/share/bash-completion/completions/lbctl out
	mkdir -p "$T/fakebin"
	cat >"$T/fakebin/lbctl" <<-'EOF'
	#!/bin/sh
	echo '{"backends": [{"name": "FTP_SVR1", "service": "FTPS_VIP"}, {"name": "FTP_SVR2", "service": "FTPS_VIP"}]}'
	EOF
	chmod 0755 "$T/fakebin/lbctl"
	comp() {
		PATH=$T/fakebin:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
			_lbctl; echo "${COMPREPLY[*]}"' _ "$c" "$@"
	}
	out=$(comp lbctl st)
	check "completion: lbctl st<TAB> -> $out" test "$out" = "status sticky"
	out=$(comp lbctl sticky "")
	check "completion: lbctl sticky <TAB> -> $out" test "$out" = "list get set clear flush"
	out=$(comp lbctl -s /x.sock backend FTP)
	check "completion: lbctl -s SOCK backend FTP<TAB> -> $out (names from lbd)" \
		test "$out" = "FTP_SVR1 FTP_SVR2"
	out=$(comp lbctl backend FTP_SVR1 "")
	check "completion: lbctl backend NAME <TAB> -> $out" test "$out" = "enable disable drain"
	out=$(comp lbctl backend FTP_SVR1 drain F)
	check "completion: lbctl backend NAME drain F<TAB> -> $out (services from lbd)" \
		test "$out" = "FTPS_VIP"
	out=$(comp lbctl --v)
	check "completion: lbctl --v<TAB> -> $out" test "$out" = "--version"
}

# Sourced by tests/install/test-package.sh for the functions above, which
# check an installed lbd under the root D (its own: "" for the .deb).
[ "${TI_LIB:-0}" = 1 ] && return 0

# ------------------------------------------------------------ make install
echo "== make install DESTDIR=$D PREFIX=/usr"
if ! "$MAKE" -C "$TOP" -s --no-print-directory install DESTDIR="$D" PREFIX=/usr \
    BUILD="$BUILD" >"$T/install.log" 2>&1; then
	cat "$T/install.log"
	bad "make install DESTDIR PREFIX=/usr"
	echo "$PASS passed, $FAIL failed"
	exit 1
fi
ok "make install DESTDIR PREFIX=/usr"

for f in usr/sbin/lbd usr/sbin/lbctl usr/libexec/lbd/lbd-release-vip; do
	check "installed executable /$f" test -f "$D/$f" -a -x "$D/$f"
done
for f in usr/lib/systemd/system/lbd.service usr/lib/sysusers.d/lbd.conf \
    usr/share/bash-completion/completions/lbctl \
    usr/share/man/man8/lbd.8 usr/share/man/man8/lbctl.8 usr/share/man/man5/lbd.conf.5 \
    usr/share/doc/lbd/README.md etc/lbd/lb1.conf etc/lbd/lb2.conf etc/lbd/standalone.conf \
    usr/share/doc/lbd/examples/lb1.conf usr/share/doc/lbd/examples/lb2.conf \
    usr/share/doc/lbd/examples/standalone.conf usr/share/doc/lbd/examples/nftables-lbd.conf \
    usr/share/doc/lbd/examples/vsftpd-realserver.conf usr/share/doc/lbd/examples/IIS-FTP.md \
    usr/share/doc/lbd/examples/lbd.sysctl.conf; do
	check "installed /$f" test -f "$D/$f"
done
check "no /etc/lbd/lbd.conf or cluster.key written" \
	test ! -e "$D/etc/lbd/lbd.conf" -a ! -e "$D/etc/lbd/cluster.key"
check "nothing enabled (no .wants link)" \
	test -z "$(find "$D" -name '*.wants' -print -quit)"

ti_installed_lbd
ti_completion
U=$D/usr/lib/systemd/system/lbd.service
ti_unit
ti_sysusers
ti_man

# ------------------------------------------------------------ configs not clobbered
echo "# edited by the operator" >>"$D/etc/lbd/lb1.conf"
cp "$D/etc/lbd/lb1.conf" "$T/lb1.edited"
rm "$D/etc/lbd/lb2.conf"
"$MAKE" -C "$TOP" -s --no-print-directory install DESTDIR="$D" PREFIX=/usr \
	BUILD="$BUILD" >"$T/install2.log" 2>&1
check "second make install succeeds" test $? -eq 0
check "second make install keeps an edited /etc/lbd/lb1.conf" cmp -s "$D/etc/lbd/lb1.conf" "$T/lb1.edited"
check "second make install says it kept it" grep -q "kept .*/etc/lbd/lb1.conf" "$T/install2.log"
check "second make install restores a missing /etc/lbd/lb2.conf" test -f "$D/etc/lbd/lb2.conf"

ti_hook_parse
ti_privileges
ti_nft_example

# ------------------------------------------------------------ uninstall
"$MAKE" -C "$TOP" -s --no-print-directory uninstall DESTDIR="$D" PREFIX=/usr \
	BUILD="$BUILD" >"$T/uninstall.log" 2>&1
check "make uninstall succeeds" test $? -eq 0
left=$(cd "$D" && find . -type f | sort | tr '\n' ' ')
check "make uninstall leaves only the edited config: $left" test "$left" = "./etc/lbd/lb1.conf "

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]