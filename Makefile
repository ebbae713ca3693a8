# oci-vtpm: make | make check | make install | make man | make demo | make bench | make bench-vm | make bench-vm-scale | make check-vm
# The one place the version is written: every program's --version prints it.
VERSION  := 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/oci-vtpm
SYSCONFDIR ?= /etc
DATADIR  ?= $(PREFIX)/share
MANDIR   ?= $(DATADIR)/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR  ?=
BUILD    ?= build

CC       ?= cc
PKGS     := json-c libcrypto libseccomp
# pkg-config runs on first use (once), not when make reads this file: on a
# fresh machine the packages come from `deps`, which runs before any cc.
once = $(eval $(1) := $(shell $(2)))$($(1))
PKG_CFLAGS = $(call once,PKG_CFLAGS,pkg-config --cflags $(PKGS) 2>/dev/null)
# STATIC_LIBS: which of json-c, libcrypto and libseccomp are linked from
# their .a files into each program; glibc stays shared (getpwnam and NSS).
#   1 (the default)        all three; the relay static-pie (below)
#   "json-c seccomp"       those two (any of json-c, crypto, seccomp)
#   0                      none
# runc execs the hook twice per container; per exec (docs/performance.md,
# "exec cost"), against all three static: libcrypto.so costs ld.so about
# 4200 symbol relocations, +0.7 ms CPU and +0.9 to +1.3 ms wall (load 3 to 8);
# shared json-c and libseccomp +0.15 ms. PIE, full RELRO and
# BIND_NOW stay in every mode. The price of a static libcrypto: an OpenSSL
# security update reaches these root programs only when they are rebuilt
# (a distribution package: STATIC_LIBS="json-c seccomp" or 0, or a rebuild
# with every OpenSSL update), and a provider module that openssl.cnf loads
# and that links libcrypto.so itself would meet a second libcrypto.
STATIC_LIBS ?= 1
STATIC_KNOWN := json-c crypto seccomp
ifneq ($(filter-out 0 1 $(STATIC_KNOWN),$(STATIC_LIBS)),)
$(error STATIC_LIBS is 1, 0 or a list of $(STATIC_KNOWN), not "$(STATIC_LIBS)")
endif
STATIC_OWN := $(addprefix -l,$(if $(filter 1,$(STATIC_LIBS)),$(STATIC_KNOWN),$(filter $(STATIC_KNOWN),$(STATIC_LIBS))))
PKG_OWN    := -ljson-c -lcrypto -lseccomp
ifneq ($(STATIC_OWN),)
PKG_ALL     = $(call once,PKG_ALL,pkg-config --static --libs $(PKGS) 2>/dev/null || echo $(PKG_OWN))
PKG_LIBS    = $(patsubst -l%,-l:lib%.a,$(filter $(STATIC_OWN),$(PKG_ALL))) \
              $(filter-out $(STATIC_OWN),$(PKG_ALL))
else
PKG_LIBS    = $(call once,PKG_LIBS,pkg-config --libs $(PKGS) 2>/dev/null || echo $(PKG_OWN))
endif

WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wno-unused-parameter \
            -Wstrict-prototypes -Wmissing-prototypes -Wvla
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE -fno-strict-aliasing
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DOV_VERSION='"$(VERSION)"' $(WARN) $(HARDEN) $(CFLAGS) -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
LDFLAGS  ?=
ALL_LDFLAGS := -pie -Wl,-z,relro -Wl,-z,now -Wl,--as-needed $(LDFLAGS)

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libocivtpm.a

PROGS    := $(BUILD)/oci-vtpm-hook $(BUILD)/oci-vtpm-relay
ifneq ($(wildcard shim/oci-vtpm-runtime.c),)
PROGS    += $(BUILD)/oci-vtpm-runtime
endif
ifneq ($(wildcard cli/oci-vtpm.c),)
PROGS    += $(BUILD)/oci-vtpm
endif
CLI_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))

# Man pages: man/NAME.SECTION.md, built by go-md2man into build/man.
MAN_SRCS := $(wildcard man/*.md)
MANS     := $(MAN_SRCS:man/%.md=$(BUILD)/man/%)

UNIT_SRCS  := $(wildcard tests/unit/test-*.c)
UNIT_TESTS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# Which Debian packages the goals need (scripts/deps.sh): installed, when
# missing, before the first compile, also under make -j. Plain `make` and
# `make install` never call apt.
DEPS_TEST  := check check-bats check-valgrind check-asan-hook demo bench fuzz
DEPS_VM    := check-vm bench-vm bench-vm-scale
DEPS_BUILD := check-unit check-asan lint deps
DEPS_SET   := $(if $(filter $(DEPS_VM),$(MAKECMDGOALS)),vm,$(if $(filter $(DEPS_TEST),$(MAKECMDGOALS)),test,$(if $(filter $(DEPS_BUILD),$(MAKECMDGOALS)),build)))

.SECONDARY:
.PHONY: all clean install man check check-unit check-asan check-asan-hook check-valgrind check-bats check-vm demo bench bench-vm bench-vm-scale deps format lint fuzz
all: $(PROGS) $(BUILD)/faults/oci-vtpm-hook

$(BUILD)/%.o: %.c | $(if $(DEPS_SET),deps)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/oci-vtpm-hook: $(BUILD)/hooks/oci-vtpm-hook.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The hook with its fault points live, for tests/bats/faults.bats: lib/fault.c
# again with -DOV_FAULTS, linked before the library (whose ov_fault is a
# no-op and reads no environment). Never installed.
$(BUILD)/faults/fault.o: lib/fault.c | $(if $(DEPS_SET),deps)
	@mkdir -p $(dir $@)
	@echo "  CC      $< (faults)"
	@$(CC) $(ALL_CFLAGS) -DOV_FAULTS -c -o $@ $<
$(BUILD)/faults/oci-vtpm-hook: $(BUILD)/hooks/oci-vtpm-hook.o $(BUILD)/faults/fault.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The control relay (lib/ctrl_relay.h): one process per socket-backend vTPM
# for the vTPM's life, so libc only. With STATIC_LIBS=1 (only: a static
# glibc has the static libcrypto's update problem) from its .a file,
# static-pie (it needs no NSS): no ld.so and no relocated shared-library
# data. Its seccomp filter is libseccomp's, made at build time
# (relay/gen-bpf.c, for this machine's architecture), so the relay neither
# links nor runs libseccomp: 51 KiB of private memory an idle relay
# instead of 71 KiB (128 KiB shared); its text is shared by every relay.
# Sanitizers need the shared libc: then it is linked as the others.
ifeq ($(STATIC_LIBS)$(findstring -fsanitize,$(LDFLAGS)),1)
RELAY_LINK := $(filter-out -pie,$(ALL_LDFLAGS)) -static-pie
else
RELAY_LINK := $(ALL_LDFLAGS)
endif
$(BUILD)/oci-vtpm-relay: $(BUILD)/relay/oci-vtpm-relay.o $(LIB)
	$(CC) $(RELAY_LINK) -o $@ $^
$(BUILD)/relay/gen-bpf: $(BUILD)/relay/gen-bpf.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lseccomp
# swtpm's own sandbox (lib/sandbox.c) is made the same way: nothing is
# compiled in the child of each start.
$(BUILD)/gen/ctrl_relay_bpf.h $(BUILD)/gen/sandbox_bpf.h: $(BUILD)/gen/%_bpf.h: $(BUILD)/relay/gen-bpf
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	@$< $(subst ctrl_relay,relay,$*) >$@.tmp && mv $@.tmp $@
$(BUILD)/lib/ctrl_relay.o: $(BUILD)/gen/ctrl_relay_bpf.h
$(BUILD)/lib/sandbox.o: $(BUILD)/gen/sandbox_bpf.h
$(BUILD)/oci-vtpm-runtime: $(BUILD)/shim/oci-vtpm-runtime.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
$(BUILD)/oci-vtpm: $(CLI_OBJS) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

man: $(MANS)

$(BUILD)/man/%: man/%.md
	@mkdir -p $(dir $@)
	@echo "  MAN     $<"
	@go-md2man -in $< -out $@

deps:
	@scripts/deps.sh $(or $(DEPS_SET),build)

# make check: lint, unit, asan, fuzz, bats (tests/run-all.sh), each stage
# ending with "time: STAGE N s". OV_JOBS (default nproc): parallel jobs of
# the ASan rebuild and of the fuzz targets' library build; FUZZ_SECONDS
# (10 here): each fuzz target's run. `make -jN check` builds in parallel
# first (.ci/run does).
check: all $(UNIT_TESTS) | deps
	@tests/run-all.sh

check-unit: all $(UNIT_TESTS) | deps
	@tests/unit/run.sh $(UNIT_TESTS)

# The unit tests again under AddressSanitizer and UBSan.
check-asan: | deps
	@$(MAKE) -s BUILD=$(BUILD)/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" $(BUILD)/asan/oci-vtpm-hook \
	  $(UNIT_TESTS:$(BUILD)/%=$(BUILD)/asan/%) >/dev/null
	@ASAN_OPTIONS=detect_leaks=1 tests/unit/run.sh $(UNIT_TESTS:$(BUILD)/%=$(BUILD)/asan/%)

# The hook under a memory checker over bats files (tests/valgrind/run.sh):
# any invalid access or leak in any run of the hook fails. check-valgrind:
# valgrind over every hook run of core.bats, harden.bats and persist.bats;
# Debian 12's valgrind 3.19 fails pidfd_open with ENOSYS (the hook then
# tracks swtpm by pid and start time, lib/proc.h) but also openat2 and
# open_tree, so a start runs under it up to placing the TPM, fails there
# and undoes itself: only valgrind's reports count (tests/valgrind/run.sh).
# check-asan-hook: the hook built with ASan/UBSan/LSan over core.bats and
# harden.bats, every path. VALGRIND_BATS and MEMCHECK_BATS pick others.
# Neither is part of check.
VALGRIND_BATS ?= tests/bats/core.bats tests/bats/harden.bats tests/bats/persist.bats
MEMCHECK_BATS ?= tests/bats/core.bats tests/bats/harden.bats
check-valgrind: all | deps
	@OV_MEMCHECK=valgrind OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/valgrind/run.sh $(VALGRIND_BATS)
check-asan-hook: all | deps
	@$(MAKE) -s BUILD=$(BUILD)/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" $(BUILD)/asan/oci-vtpm-hook >/dev/null
	@OV_MEMCHECK=asan OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/valgrind/run.sh $(MEMCHECK_BATS)

# The host bench, then the soak again in the VM with the device backend
# (bench-vm), when qemu and the VM kernel are there; one line says so when
# not. BENCH_N, BENCH_SCALE, BENCH_SOAK: tests/bench/bench.sh. Between
# them tests/bench/warm.sh (WARM_N: warm named vTPMs against cold ones) and
# tests/bench/scale.sh (SCALE_N, 1000: vTPM containers alive at once).
bench: all | deps
	@rc=0; OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/bench/bench.sh || rc=1; \
	  OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/bench/warm.sh || rc=1; \
	  OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/bench/scale.sh || rc=1; \
	  OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/vm/bench.sh --if-available || rc=1; exit $$rc

# The soak (BENCH_SOAK cycles, default 1000) in the VM, device backend,
# leak counts including /dev/tpm*, /sys/class/tpm, proxy fds: tests/vm/bench.sh.
bench-vm: all | deps
	@OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/vm/bench.sh

# BENCH_VM_SCALE (200) containers with a vtpm_proxy chip each alive at once
# in the VM (tests/vm/bench.sh --scale: tests/bench/scale.sh with
# SCALE_BACKEND=device): every chip answering from the host and from inside
# its container, memory, tasks and files per container, the limit each
# would set, nothing left after. OCI_VTPM_VM_MEM sizes the guest (MiB).
bench-vm-scale: all | deps
	@OCI_VTPM_BUILD=$(abspath $(BUILD)) tests/vm/bench.sh --scale

fuzz: $(BUILD)/gen/ctrl_relay_bpf.h $(BUILD)/gen/sandbox_bpf.h | deps
	@OCI_VTPM_BUILD=$(BUILD) tests/fuzz/run.sh

check-bats: all | deps
	@tests/bats/run.sh

demo: all | deps
	@examples/demo.sh

# cppcheck cannot see ownership by __attribute__((cleanup)) and reports
# every cleanup_free variable set from strdup as a leak: memleak is left to
# LeakSanitizer (make check-asan), which runs the code.
lint: | deps
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --std=c11 --inline-suppr --suppress=memleak -D_GNU_SOURCE -Iinclude lib hooks shim cli
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	@scripts/size-check.sh
	@echo "lint: 1 passed, 0 failed"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

install: all man
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	for m in $(MANS); do \
	  install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/; done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/oci-vtpm \
	  $(DESTDIR)$(DATADIR)/containers/oci/hooks.d
	install -m 0755 $(PROGS) $(DESTDIR)$(BINDIR)/
	install -m 0644 config/oci-vtpm.json $(DESTDIR)$(SYSCONFDIR)/oci-vtpm/config.json.example
	sed 's|@BINDIR@|$(BINDIR)|g' config/hooks.d/oci-vtpm.json.in \
	  > $(DESTDIR)$(DATADIR)/containers/oci/hooks.d/oci-vtpm.json
	# podman's precreate stage (docs/guide.md, "podman"): a directory of its own,
	# for --hooks-dir; not active by default.
	install -d $(DESTDIR)$(DATADIR)/oci-vtpm/precreate-hooks.d
	sed 's|@BINDIR@|$(BINDIR)|g' config/hooks.d/oci-vtpm-precreate.json.in \
	  > $(DESTDIR)$(DATADIR)/oci-vtpm/precreate-hooks.d/oci-vtpm-precreate.json
	# The provisioning pool's refill (docs/guide.md, "Provisioning pool"): installed,
	# not enabled (systemctl enable --now oci-vtpm-pool.timer).
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' config/systemd/oci-vtpm-pool.service \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/oci-vtpm-pool.service
	install -m 0644 config/systemd/oci-vtpm-pool.timer $(DESTDIR)$(SYSTEMDUNITDIR)/

clean:
	rm -rf $(BUILD)

-include tests/vm/vm.mk
-include $(shell find $(BUILD) -name "*.d" 2>/dev/null)
