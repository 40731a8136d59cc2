#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# rgmem_hvo_pool PAGES
#
# Fills the 2 MiB pool with PAGES pages whose vmemmap HVO has optimized,
# so that conversions split folios whose struct pages had to be restored.
# HVO is turned on here, not with hugetlb_free_vmemmap=on: on 6.12.118
# that also optimizes the 1 GiB pages set aside at boot, before their tail
# struct pages are initialized, and vmemmap_remap_pte() warns (a kernel
# bug of its own; see Documentation/rgmem.rst). Fails unless the pool ends
# with PAGES pages and the memory map shrank by the 7 pages HVO frees for
# each.

pages=$1
pool=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
memmap() {
	awk '$1 == "nr_memmap_pages" || $1 == "nr_memmap_boot_pages" { n += $2 }
		END { print n + 0 }' /proc/vmstat
}

echo 1 >/proc/sys/vm/hugetlb_optimize_vmemmap || exit 1
before=$(memmap)
echo "$pages" >"$pool" || exit 1
got=$(cat "$pool")
freed=$((before - $(memmap)))
echo "2 MiB pool: $got pages; memory map: $freed pages freed"
if [ "$got" != "$pages" ]; then
	echo "wanted $pages pages"
	exit 1
fi
if [ "$freed" -lt $((7 * pages)) ]; then
	echo "HVO optimized fewer than $pages pages"
	exit 1
fi
