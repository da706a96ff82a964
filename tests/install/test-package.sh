#!/bin/bash
# test-package.sh - installs the built .deb on this machine with apt and
# checks what an administrator gets: the files where Debian puts them, the
# lbd user and lbdctl group made by the package, then test-install.sh's
# own checks of an installed lbd (run on the package's files: the
# installed lbd and lbctl on the installed configs, the unit, sysusers,
# man pages, completion, the stop hook, and, in a network namespace, lbd
# as user lbd with only the unit's capabilities adding the VIP and
# answering lbctl status); then apt remove keeps an edited conffile, a
# reinstall keeps it too, and apt purge removes everything, the user and
# group it made included.
#
# Usage: tests/install/test-package.sh build/lbd_VERSION_ARCH.deb   (make test-package, as root)
# Prints ok:/FAIL:/skip: lines and "N passed, M failed"; exits 1 on failure.
# Skipped (exit 0, said loudly) when not root or when lbd is already
# installed or /etc/lbd exists: it never touches an installation it did
# not make; under CI (CI set) such a skip fails instead.

DEB=${1:?usage: test-package.sh FILE.deb}
DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
TI_LIB=1
# shellcheck source=test-install.sh
. "$(dirname "$0")/test-install.sh"
D=""				# the package installs under /
INSTALLED=0			# this test installed the package (purge it at the end)
MADE_USER=0			# ... and the package made user lbd / group lbdctl
MADE_GROUP=0

apt_q() { DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" >>"$T/apt.log" 2>&1; }

package_cleanup() {
	if [ "$INSTALLED" = 1 ]; then
		apt_q purge lbd
		[ "$MADE_USER" = 1 ] && getent passwd lbd >/dev/null && userdel lbd 2>/dev/null
		[ "$MADE_GROUP" = 1 ] && getent group lbdctl >/dev/null && groupdel lbdctl 2>/dev/null
		[ "$MADE_USER" = 1 ] && getent group lbd >/dev/null && groupdel lbd 2>/dev/null
	fi
	cleanup			# test-install.sh's: lbd, strace, namespace, $T
}
trap package_cleanup EXIT

# Skipped loudly on a workstation; under CI (CI set) a skip is a failure.
package_skip() {
	if [ -n "${CI:-}" ]; then
		echo "FAIL: the package test cannot run under CI: $*"
		exit 1
	fi
	echo "SKIP (the package test did NOT run): $*"
	exit 0
}
if [ "$(id -u)" -ne 0 ]; then
	package_skip "not root: the package test installs the .deb"
fi
if dpkg -s lbd >/dev/null 2>&1 || [ -e /etc/lbd ]; then
	package_skip "lbd is already installed here (or /etc/lbd exists): not touching it"
fi
[ -f "$DEB" ] || { echo "FAIL: $DEB missing (make deb)"; exit 1; }

# ------------------------------------------------------------ apt install
getent passwd lbd >/dev/null || MADE_USER=1
getent group lbdctl >/dev/null || MADE_GROUP=1
echo "== apt install $DEB"
INSTALLED=1
if ! apt_q install --no-install-recommends "$DEB"; then
	tail -20 "$T/apt.log"
	bad "apt install ./$(basename "$DEB")"
	echo "$PASS passed, $FAIL failed"
	exit 1
fi
ok "apt install ./$(basename "$DEB")"
out=$(dpkg-query -W -f '${Status} ${Version}' lbd 2>&1)
check "dpkg: lbd installed ($out)" test "$out" = "install ok installed $TI_VERSION"
for f in usr/sbin/lbd usr/sbin/lbctl usr/libexec/lbd/lbd-release-vip; do
	check "package executable /$f" test -f "/$f" -a -x "/$f"
done
for f in lib/systemd/system/lbd.service usr/lib/sysusers.d/lbd.conf \
    usr/share/bash-completion/completions/lbctl \
    usr/share/man/man8/lbd.8.gz usr/share/man/man8/lbctl.8.gz usr/share/man/man5/lbd.conf.5.gz \
    usr/share/doc/lbd/README.md.gz usr/share/doc/lbd/copyright usr/share/doc/lbd/changelog.gz \
    etc/lbd/lb1.conf etc/lbd/lb2.conf etc/lbd/standalone.conf \
    usr/share/doc/lbd/examples/lb1.conf usr/share/doc/lbd/examples/lb2.conf \
    usr/share/doc/lbd/examples/standalone.conf usr/share/doc/lbd/examples/nftables-lbd.conf \
    usr/share/doc/lbd/examples/vsftpd-realserver.conf usr/share/doc/lbd/examples/IIS-FTP.md \
    usr/share/doc/lbd/examples/lbd.sysctl.conf; do
	check "package file /$f" test -f "/$f"
done
out=$(dpkg-query -W -f '${Conffiles}' lbd | awk 'NF { print $1 }' | sort | tr '\n' ' ')
check "conffiles: $out" test "$out" = "/etc/lbd/lb1.conf /etc/lbd/lb2.conf /etc/lbd/standalone.conf "
check "no /etc/lbd/lbd.conf or cluster.key written" test ! -e /etc/lbd/lbd.conf -a ! -e /etc/lbd/cluster.key
check "the package made user lbd (sysusers)" getent passwd lbd
check "... and group lbdctl" getent group lbdctl
if [ -d /run/systemd/system ]; then
	check "unit enabled" systemctl is-enabled --quiet lbd
	check "... and not started without /etc/lbd/lbd.conf" bash -c '! systemctl is-active --quiet lbd'
else
	skip "systemd is not PID 1 here: the unit's enable and start (postinst) not seen"
fi

# ------------------------------------------------------------ test-install.sh's checks
ti_installed_lbd
ti_completion
U=/lib/systemd/system/lbd.service
ti_unit
ti_sysusers
ti_man
ti_hook_parse
# The package's own user and group, as the unit's User=lbd Group=lbdctl.
TI_RUN_UID=$(id -u lbd) TI_RUN_GID=$(getent group lbdctl | cut -d: -f3) ti_privileges

# ------------------------------------------------------------ remove, conffiles
echo "# edited by the operator" >>/etc/lbd/lb1.conf
cp /etc/lbd/lb1.conf "$T/lb1.edited"
apt_q remove lbd
check "apt remove lbd succeeds" test $? -eq 0
check "... removes the binaries" test ! -e /usr/sbin/lbd -a ! -e /usr/sbin/lbctl
check "... keeps the edited conffile /etc/lbd/lb1.conf" cmp -s /etc/lbd/lb1.conf "$T/lb1.edited"
check "... and the others (conffiles stay until purge)" test -f /etc/lbd/lb2.conf
out=$(dpkg-query -W -f '${Status}' lbd 2>&1)
check "... dpkg: $out" test "$out" = "deinstall ok config-files"
apt_q install --no-install-recommends "$DEB"
check "apt install again keeps the edited /etc/lbd/lb1.conf" cmp -s /etc/lbd/lb1.conf "$T/lb1.edited"
apt_q purge lbd
check "apt purge lbd succeeds" test $? -eq 0
check "... removes /etc/lbd" test ! -e /etc/lbd
left=$(dpkg -L lbd 2>/dev/null | wc -l)
check "... and dpkg knows no file of it ($left)" test "$left" -eq 0
INSTALLED=0
[ "$MADE_USER" = 1 ] && userdel lbd 2>/dev/null
[ "$MADE_USER" = 1 ] && getent group lbd >/dev/null && groupdel lbd 2>/dev/null
[ "$MADE_GROUP" = 1 ] && groupdel lbdctl 2>/dev/null
check "the user and groups the package made are gone again" \
	bash -c '! getent passwd lbd && ! getent group lbdctl'

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
