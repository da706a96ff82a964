# lbd - HA pair of FTPS splice load balancers.  See README.md.

PREFIX	?= /usr/local
DESTDIR	?=
CC	?= cc
BUILD	?= build

PKGS	 = libevent libnl-3.0 libnl-route-3.0 libprotobuf-c libconfig libsodium jansson
# Recursive (=) on purpose: pkg-config runs only once `make deps` has installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARN	 = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilbd -Ihasync -I$(BUILD)/proto $(PKG_CFLAGS)
SAN	 = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROTOS	 = $(wildcard proto/*.proto)
PROTO_C	 = $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTOS))
PROTO_H	 = $(PROTO_C:.c=.h)

# Everything but the two programs' main files: linked into lbd and into the unit tests.
CORE_SRC = $(filter-out lbd/main.c lbd/lbctl.c,$(wildcard lbd/*.c)) $(wildcard hasync/*.c)
CORE_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRC)) $(patsubst $(BUILD)/proto/%.c,$(BUILD)/obj/proto/%.o,$(PROTO_C))
SAN_OBJ	 = $(patsubst $(BUILD)/obj/%,$(BUILD)/san/%,$(CORE_OBJ))

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

DEB_BUILD = build-essential pkg-config libevent-dev libnl-3-dev libnl-route-3-dev \
	    libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libconfig-dev \
	    libsodium-dev libjansson-dev
DEB_TEST  = vsftpd curl lftp python3 iproute2 openssl socat procps psmisc iputils-arping tcpdump
DEB_BENCH = haproxy keepalived iperf3
DEB_ALL	  = $(DEB_BUILD) $(DEB_TEST) $(DEB_BENCH)

.PHONY: all deps check unit rig demo bench install clean
.SECONDARY:

all: $(BUILD)/lbd $(BUILD)/lbctl

# Installs the Debian packages of SPEC section 3 when any is missing.
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

$(BUILD)/lbd: $(BUILD)/obj/lbd/main.o $(CORE_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/lbctl: $(BUILD)/obj/lbd/lbctl.o
	$(CC) $(CFLAGS) -o $@ $^ $(shell pkg-config --libs jansson)

$(BUILD)/unit/%: tests/unit/%.c $(SAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -Itests/unit -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
		echo "== $$t"; \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		    ./$$t || fail=1; \
	done; [ $$fail -eq 0 ] || { echo "unit tests FAILED"; exit 1; }

# Namespace rig drills (root).
rig: all
	tests/rig/run-drills

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) rig

demo: deps
	$(MAKE) all
	tests/rig/demo

bench: deps
	$(MAKE) all
	tests/bench/run

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/lbd
	install -m 0755 $(BUILD)/lbd $(DESTDIR)$(PREFIX)/sbin/lbd
	install -m 0755 $(BUILD)/lbctl $(DESTDIR)$(PREFIX)/sbin/lbctl
	install -m 0644 deploy/lb1.conf deploy/lb2.conf deploy/standalone.conf $(DESTDIR)/etc/lbd/
	install -d $(DESTDIR)/lib/systemd/system
	install -m 0644 deploy/lbd.service $(DESTDIR)/lib/systemd/system/lbd.service

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
