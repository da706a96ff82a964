# lbd - HA pair of FTPS splice load balancers.  See README.md.

PREFIX	?= /usr/local
DESTDIR	?=
CC	?= cc
BUILD	?= build
# The one version source: the newest entry of debian/changelog ("lbd (0.9.0) ...").
VERSION	:= $(shell awk -F'[()]' 'NR == 1 { print $$2 }' debian/changelog)

PKGS	 = libevent libnl-3.0 libnl-route-3.0 libprotobuf-c libconfig libsodium jansson libnftables libsystemd
# Recursive (=) on purpose: pkg-config runs only once `make deps` has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARN	 = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS	?= -O2 -g
INC	 = -Ilbd -Ihasync -Icommon -I$(BUILD)/proto
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DLBD_VERSION='"$(VERSION)"' $(WARN) $(CPPFLAGS) $(CFLAGS) $(INC) $(PKG_CFLAGS)
SAN	 = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROTOS	 = $(wildcard proto/*.proto)
PROTO_C	 = $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTOS))
PROTO_H	 = $(PROTO_C:.c=.h)

PROTO_OBJ = $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))

# The HA layer, a static library; the generated protobuf code, which lbd
# uses too, is linked beside it. It sees only its own headers: hasync links alone.
HASYNC_SRC = $(wildcard hasync/*.c)
HASYNC_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(HASYNC_SRC))
HASYNC_LIB = $(BUILD)/libhasync.a
HASYNC_INC = -Ihasync -Icommon -I$(BUILD)/proto

# lbd's files but the two programs' main files: linked into lbd and into lbd's unit tests.
CORE_SRC = $(filter-out lbd/main.c lbd/lbctl.c,$(wildcard lbd/*.c))
CORE_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRC)) $(PROTO_OBJ)

# Sanitized twins, for the unit tests.
SAN_OBJ	 = $(patsubst $(BUILD)/obj/%,$(BUILD)/san/%,$(CORE_OBJ))
HASYNC_SAN_OBJ = $(patsubst $(BUILD)/obj/%,$(BUILD)/san/%,$(HASYNC_OBJ))
HASYNC_SAN_LIB = $(BUILD)/san/libhasync.a
PROTO_SAN_OBJ = $(patsubst $(BUILD)/obj/%,$(BUILD)/san/%,$(PROTO_OBJ))

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))
# hasync's own unit tests: they link the library alone, no lbd object.
HASYNC_UNIT = $(patsubst %,$(BUILD)/unit/test_%,heartbeat channel sync ha pacer steer vip key)

DEB_BUILD = build-essential pkg-config libevent-dev libnl-3-dev libnl-route-3-dev \
	    libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libconfig-dev \
	    libsodium-dev libjansson-dev libnftables-dev libsystemd-dev
# make deb: Debian's own packaging tools, and lintian to check the result.
DEB_PKG   = debhelper dpkg-dev fakeroot lintian
DEB_TEST  = bash-completion vsftpd curl lftp python3 iproute2 openssl socat procps psmisc iputils-arping tcpdump nftables groff-base man-db strace gnuplot-nox
DEB_BENCH = haproxy keepalived iperf3
DEB_ALL	  = $(DEB_BUILD) $(DEB_PKG) $(DEB_TEST) $(DEB_BENCH)

.PHONY: all deps check unit rig rig-san chaos soak demo bench bench-tools fuzz fuzz-run install uninstall test-install deb test-package clean
.SECONDARY:

all: $(BUILD)/lbd $(BUILD)/lbctl

# Installs the build, test and bench Debian packages (DEB_ALL) when any is missing.
deps:
	@missing=$$(for p in $(DEB_ALL); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_ALL); \
	else echo "deps: all installed"; fi

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --c_out=$(BUILD)/proto -Iproto $<

$(BUILD)/obj/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -MMD -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -c -o $@ $<

$(BUILD)/san/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Wno-missing-prototypes -MMD -c -o $@ $<

$(BUILD)/san/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -MMD -c -o $@ $<

$(HASYNC_OBJ) $(HASYNC_SAN_OBJ) $(HASYNC_UNIT): INC = $(HASYNC_INC)

# The files that print LBD_VERSION follow the changelog.
$(BUILD)/obj/lbd/main.o $(BUILD)/obj/lbd/lbctl.o $(BUILD)/obj/lbd/view.o $(BUILD)/obj/lbd/cluster.o \
    $(BUILD)/san/lbd/main.o $(BUILD)/san/lbd/view.o $(BUILD)/san/lbd/cluster.o: debian/changelog

$(HASYNC_LIB): $(HASYNC_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(HASYNC_SAN_LIB): $(HASYNC_SAN_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/lbd: $(BUILD)/obj/lbd/main.o $(CORE_OBJ) $(HASYNC_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The daemon under AddressSanitizer + UndefinedBehaviorSanitizer, for the rig (make rig-san).
$(BUILD)/lbd-san: $(BUILD)/san/lbd/main.o $(SAN_OBJ) $(HASYNC_SAN_LIB)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS)

$(BUILD)/lbctl: $(BUILD)/obj/lbd/lbctl.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs jansson)

$(BUILD)/unit/%: tests/unit/%.c $(SAN_OBJ) $(HASYNC_SAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Itests/unit -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

$(HASYNC_UNIT): $(BUILD)/unit/%: tests/unit/%.c $(HASYNC_SAN_LIB) $(PROTO_SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Itests/unit -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# test_lbctl compiles lbctl.c into itself (lbctl has no object in SAN_OBJ).
$(BUILD)/unit/test_lbctl: tests/unit/test_lbctl.c lbd/lbctl.c $(SAN_OBJ) $(HASYNC_SAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Itests/unit -o $@ $(filter-out lbd/lbctl.c,$^) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
		echo "== $$t"; \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		    $$t || fail=1; \
	done; [ $$fail -eq 0 ] || { echo "unit tests FAILED"; exit 1; }

# Namespace rig drills (root).
rig: all
	tests/rig/run-drills

# Seeded random faults under load (CHAOS_CYCLES, default 100; CHAOS_SEED replays a run).
chaos: all
	CHAOS_CYCLES=$${CHAOS_CYCLES:-100} tests/rig/run-drills chaos

# The chaos load for SOAK_MIN minutes (30), a fault every SOAK_FAULT_S s (180); plot in build/soak/.
soak: deps
	$(MAKE) all
	SOAK_MIN=$${SOAK_MIN:-30} tests/rig/run-drills soak

# The functional drills again, against the sanitized daemon (any report fails them).
rig-san: all $(BUILD)/lbd-san
	RIG_SAN=1 tests/rig/run-drills

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) test-install
	$(MAKE) test-package
	$(MAKE) rig
	$(MAKE) rig-san

demo: deps
	$(MAKE) all
	tests/rig/demo

bench: deps
	$(MAKE) all bench-tools
	tests/bench/run

# The benchmark's load tools (tests/bench/*.c); stickysize links lbd's own sticky table.
BENCH_BIN = $(BUILD)/bench/loadgen $(BUILD)/bench/stickysize $(BUILD)/bench/stickyfill \
	    $(BUILD)/bench/stickyapply
bench-tools: $(BENCH_BIN)

$(BUILD)/bench/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $<

$(BUILD)/bench/stickyfill: tests/bench/stickyfill.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -o $@ $<

$(BUILD)/bench/stickysize: tests/bench/stickysize.c $(BUILD)/obj/lbd/sticky.o $(BUILD)/obj/lbd/log.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/stickyapply: tests/bench/stickyapply.c $(BUILD)/obj/lbd/sticky.o $(BUILD)/obj/lbd/log.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)

# libFuzzer harnesses (clang): the replication frame path after decryption,
# and the configuration file; bounded runs (FUZZ_TIME seconds each), not
# part of `make check`.  FUZZ_TIME=600 make fuzz for longer.
FUZZ_TIME ?= 60
# lbd's core whole: replica.c hands mirror records to mirror_peer.c, which rebuilds through the relay.
FUZZ_SRC   = tests/fuzz/fuzz_frame.c $(CORE_SRC) $(HASYNC_SRC) $(PROTO_C)
FUZZ_CONF_SRC = tests/fuzz/fuzz_config.c lbd/config.c lbd/addr.c lbd/log.c lbd/util.c
fuzz: deps
	@command -v clang >/dev/null || { echo "fuzz: installing clang"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang; }
	$(MAKE) fuzz-run

fuzz-run: $(BUILD)/fuzz/fuzz_frame $(BUILD)/fuzz/fuzz_config
	@mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/corpus-config
	$(BUILD)/fuzz/fuzz_frame -max_total_time=$(FUZZ_TIME) -dict=tests/fuzz/fuzz_frame.dict \
	    -print_final_stats=1 $(BUILD)/fuzz/corpus tests/fuzz/seeds
	ASAN_OPTIONS=detect_leaks=0 $(BUILD)/fuzz/fuzz_config -max_total_time=$(FUZZ_TIME) \
	    -max_len=4096 -print_final_stats=1 $(BUILD)/fuzz/corpus-config tests/fuzz/seeds-config

$(BUILD)/fuzz/fuzz_frame: $(FUZZ_SRC) $(PROTO_H) lbd/lbd.h hasync/hasync.h hasync/hasync_int.h
	@mkdir -p $(dir $@)
	clang -std=gnu11 -D_GNU_SOURCE -DLBD_VERSION='"$(VERSION)"' -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all $(INC) $(PKG_CFLAGS) \
	    -o $@ $(FUZZ_SRC) $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_config: $(FUZZ_CONF_SRC) lbd/lbd.h
	@mkdir -p $(dir $@)
	clang -std=gnu11 -D_GNU_SOURCE -DLBD_VERSION='"$(VERSION)"' -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all $(INC) $(PKG_CFLAGS) \
	    -o $@ $(FUZZ_CONF_SRC) $(PKG_LIBS)

# Install paths.  systemd and systemd-sysusers also read PREFIX=/usr/local's
# lib/systemd/system and lib/sysusers.d.  Nothing is enabled or started.
SBINDIR	   = $(PREFIX)/sbin
LIBEXECDIR = $(PREFIX)/libexec/lbd
MANDIR	   = $(PREFIX)/share/man
DOCDIR	   = $(PREFIX)/share/doc/lbd
UNITDIR	  ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
CONFDIR	   = /etc/lbd
EXAMPLES   = deploy/lb1.conf deploy/lb2.conf deploy/standalone.conf
DOC_EXTRA  = deploy/lbd.sysctl.conf deploy/nftables-lbd.conf deploy/vsftpd-realserver.conf deploy/IIS-FTP.md

# Binaries, stop hook, unit (paths rewritten for PREFIX), sysusers entry,
# man pages, docs and examples.  /etc/lbd gets the three example configs
# only where no file of that name exists: an operator's edits are never
# overwritten, and /etc/lbd/lbd.conf and cluster.key are never written.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(CONFDIR) $(DESTDIR)$(COMPLETIONDIR)
	install -m 0644 deploy/lbctl.bash-completion $(DESTDIR)$(COMPLETIONDIR)/lbctl
	install -m 0755 $(BUILD)/lbd $(DESTDIR)$(SBINDIR)/lbd
	install -m 0755 $(BUILD)/lbctl $(DESTDIR)$(SBINDIR)/lbctl
	install -m 0755 deploy/lbd-release-vip $(DESTDIR)$(LIBEXECDIR)/lbd-release-vip
	sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/libexec/lbd/|$(LIBEXECDIR)/|g' \
		deploy/lbd.service >$(DESTDIR)$(UNITDIR)/lbd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lbd.service
	install -m 0644 deploy/lbd.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/lbd.conf
	install -m 0644 man/lbd.8 man/lbctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/lbd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 $(EXAMPLES) $(DOC_EXTRA) $(DESTDIR)$(DOCDIR)/examples/
	@for f in $(notdir $(EXAMPLES)); do \
		if [ -e $(DESTDIR)$(CONFDIR)/$$f ]; then \
			echo "install: kept $(DESTDIR)$(CONFDIR)/$$f (this version: $(DOCDIR)/examples/$$f)"; \
		else \
			echo "install -m 0644 deploy/$$f $(DESTDIR)$(CONFDIR)/$$f"; \
			install -m 0644 deploy/$$f $(DESTDIR)$(CONFDIR)/$$f || exit 1; \
		fi; \
	done
	@echo "install: done; nothing enabled or started.  Next (README, \"Deploying on two VMs\"):"
	@echo "  systemd-sysusers (user lbd, group lbdctl); cp $(CONFDIR)/lb1.conf $(CONFDIR)/lbd.conf (lb2.conf on node B);"
	@echo "  (umask 077; lbd --genkey > $(CONFDIR)/cluster.key); chown lbd: $(CONFDIR)/cluster.key (lbd alone reads it);"
	@echo "  systemctl daemon-reload; usermod -aG lbdctl NAME lets NAME run lbctl"

# Removes what install put in place, except /etc/lbd files that differ
# from the examples (an operator's configs and key stay), and the lbd user.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/lbd $(DESTDIR)$(SBINDIR)/lbctl \
		$(DESTDIR)$(LIBEXECDIR)/lbd-release-vip $(DESTDIR)$(UNITDIR)/lbd.service \
		$(DESTDIR)$(SYSUSERSDIR)/lbd.conf $(DESTDIR)$(MANDIR)/man8/lbd.8 \
		$(DESTDIR)$(MANDIR)/man8/lbctl.8 $(DESTDIR)$(MANDIR)/man5/lbd.conf.5 \
		$(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(COMPLETIONDIR)/lbctl
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES) $(DOC_EXTRA)))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(LIBEXECDIR) 2>/dev/null
	@for f in $(notdir $(EXAMPLES)); do \
		if cmp -s deploy/$$f $(DESTDIR)$(CONFDIR)/$$f; then rm -f $(DESTDIR)$(CONFDIR)/$$f; \
		elif [ -e $(DESTDIR)$(CONFDIR)/$$f ]; then echo "uninstall: kept $(DESTDIR)$(CONFDIR)/$$f (edited)"; fi; \
	done
	-@rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || echo "uninstall: kept $(DESTDIR)$(CONFDIR) (not empty)"

# make install into a scratch DESTDIR, then checks what it installed.
test-install: all
	BUILD=$(BUILD) tests/install/test-install.sh

# The Debian package, with Debian's tools (debian/, debhelper): built from a
# copy of the tree in $(BUILD)/deb (dpkg-buildpackage writes beside its
# source), then checked by lintian (an error fails; warnings are printed).
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE = $(BUILD)/lbd_$(VERSION)_$(DEB_ARCH).deb
deb: deps
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/lbd-$(VERSION)
	tar -c --exclude=./build --exclude=./.git --exclude='./$(BUILD)' . | tar -x -C $(BUILD)/deb/lbd-$(VERSION)
	cd $(BUILD)/deb/lbd-$(VERSION) && dpkg-buildpackage -b -us -uc --no-check-builddeps >../build.log 2>&1 || \
		{ tail -40 ../build.log; exit 1; }
	cp $(BUILD)/deb/lbd_$(VERSION)_$(DEB_ARCH).deb $(DEB_FILE)
	@lintian --fail-on error --info $(BUILD)/deb/lbd_$(VERSION)_$(DEB_ARCH).changes >$(BUILD)/lintian.txt 2>&1; \
		rc=$$?; cat $(BUILD)/lintian.txt; \
		echo "deb: $(DEB_FILE): lintian $$(grep -c '^E:' $(BUILD)/lintian.txt) errors, $$(grep -c '^W:' $(BUILD)/lintian.txt) warnings (exit $$rc)"; \
		exit $$rc

# make deb, then apt install of it on this machine, the checks of
# test-install.sh on what it installed, apt remove/purge (tests/install).
test-package: deb
	BUILD=$(BUILD) tests/install/test-package.sh $(DEB_FILE)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -path '$(BUILD)/deb' -prune -o -name '*.d' -type f -print 2>/dev/null)
