# VM tests: boot Debian's own kernel under qemu (TCG) with the host's / as a
# read-only root, so tests get /dev/vtpmx, swtpm --vtpm-proxy and cgroups
# that this host's kernel lacks. See tests/vm/run.sh.
# Included by the top-level Makefile (`include tests/vm/vm.mk`).

# Directory of this fragment, fixed at include time.
VM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
VM_RUN ?= $(VM_DIR)/run.sh
# Extra run.sh options, e.g. make check-vm VM_FLAGS='--verbose --timeout 900'
VM_FLAGS ?=

.PHONY: check-vm check-vm-smoke check-vm-v2 vm-prepare

# Fetches the kernel into $OCI_VTPM_VM_CACHE (default /var/cache/oci-vtpm/vm)
# on first use and builds the initramfs; later runs reuse both.
vm-prepare:
	$(VM_DIR)/prepare.sh

# The whole device-backend suite, v1 and v2 (tests/vm/check.sh).
check-vm: all | deps
	@$(VM_DIR)/check.sh

check-vm-smoke:
	$(VM_RUN) $(VM_FLAGS) --cgroup v1 -- $(VM_DIR)/smoke.sh

check-vm-v2:
	$(VM_RUN) $(VM_FLAGS) --cgroup v2 -- $(VM_DIR)/smoke.sh
