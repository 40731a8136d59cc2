# SPDX-License-Identifier: GPL-2.0
#
# rgmem: KVM's guest_memfd as a loadable Rust module.
#
#   make run      deps, kernel, module, then boot a VM, load rgmem, run the example VMM
#   make check    deps, host tests, lint, debug kernel, every VM test
#   make vm       an interactive shell in the test VM
#   make bench    rgmem against KVM's C guest_memfd, release kernel, one boot
#   make profile  what the guest executes on each side, for the first-touch row
#   make check-long  the host tests with ten times the random cases (RGMEM_LONG=1)
#
# Kbuild (not this file) describes the module to the kernel's build.
# KDIR=<clean kernel source> builds that tree instead of Debian's 6.12;
# KBUILD=<built kernel tree> uses an already built, already patched kernel.

FLAVOUR ?= release
export KDIR KBUILD

.PHONY: all deps kernel module selftests host-test check-long lint check run bench profile vm \
	clean distclean

all: module

deps:
	@scripts/deps

kernel: deps
	@scripts/kernel $(FLAVOUR)

module: kernel
	@scripts/module $(FLAVOUR)

selftests: kernel
	@scripts/selftests $(FLAVOUR)

host-test:
	@cd tests/host && cargo test --release

check-long:
	@cd tests/host && RGMEM_LONG=1 cargo test --release

lint: deps
	@scripts/lint

check:
	@scripts/check

run: deps
	@scripts/kernel release
	@scripts/module release
	@scripts/selftests release
	@scripts/vm run

bench: deps
	@scripts/bench

profile: deps
	@scripts/profile

vm: deps
	@scripts/kernel $(FLAVOUR)
	@scripts/module $(FLAVOUR)
	@scripts/selftests $(FLAVOUR)
	@scripts/vm shell $(FLAVOUR)

clean:
	rm -rf work tests/host/target tests/vmm/target

# Also drops the kernel trees and builds shared by every checkout.
distclean: clean
	rm -rf $${RGMEM_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/rgmem}
