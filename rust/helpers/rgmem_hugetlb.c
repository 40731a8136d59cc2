// SPDX-License-Identifier: GPL-2.0

/*
 * mm's hugetlb pool for rgmem.  Besides the static inlines, these reach
 * functions that vmlinux has but does not export: the helpers are built
 * into vmlinux, and each rust_helper_* is exported to Rust modules.
 */

#include <linux/hugetlb.h>
#include <linux/hugetlb_cgroup.h>
#include <linux/pagemap.h>
#include <linux/topology.h>

#ifdef CONFIG_HUGETLB_PAGE

struct hstate *rust_helper_rgmem_size_to_hstate(unsigned long size)
{
	return size_to_hstate(size);
}

unsigned long rust_helper_rgmem_hstate_nr_huge_pages(struct hstate *h)
{
	return READ_ONCE(h->nr_huge_pages);
}

gfp_t rust_helper_rgmem_htlb_alloc_mask(struct hstate *h)
{
	return htlb_alloc_mask(h);
}

struct hugepage_subpool *rust_helper_rgmem_hugepage_new_subpool(struct hstate *h,
								 long max_hpages,
								 long min_hpages)
{
	return hugepage_new_subpool(h, max_hpages, min_hpages);
}

void rust_helper_rgmem_hugepage_put_subpool(struct hugepage_subpool *spool)
{
	hugepage_put_subpool(spool);
}

long rust_helper_rgmem_hugepage_subpool_get_pages(struct hugepage_subpool *spool,
						  long delta)
{
	return hugepage_subpool_get_pages(spool, delta);
}

long rust_helper_rgmem_hugepage_subpool_put_pages(struct hugepage_subpool *spool,
						  long delta)
{
	return hugepage_subpool_put_pages(spool, delta);
}

struct folio *rust_helper_rgmem_alloc_hugetlb_folio_reserve(struct hstate *h, int nid,
							     gfp_t gfp_mask)
{
	return alloc_hugetlb_folio_reserve(h, nid, NULL, gfp_mask);
}

void rust_helper_rgmem_hugetlb_set_folio_subpool(struct folio *folio,
						 struct hugepage_subpool *spool)
{
	hugetlb_set_folio_subpool(folio, spool);
}

int rust_helper_rgmem_numa_node_id(void)
{
	return numa_node_id();
}

void rust_helper_rgmem___folio_set_locked(struct folio *folio)
{
	__folio_set_locked(folio);
}

void rust_helper_rgmem___folio_clear_locked(struct folio *folio)
{
	__folio_clear_locked(folio);
}

int rust_helper_rgmem___filemap_add_folio(struct address_space *mapping,
					  struct folio *folio, pgoff_t index,
					  gfp_t gfp)
{
	return __filemap_add_folio(mapping, folio, index, gfp, NULL);
}

bool rust_helper_rgmem_folio_test_hugetlb(struct folio *folio)
{
	return folio_test_hugetlb(folio);
}

struct hugepage_subpool *rust_helper_rgmem_hugetlb_folio_subpool(struct folio *folio)
{
	return hugetlb_folio_subpool(folio);
}

/* Whether a hugetlb folio has no hugetlb page flag and no cgroup charge. */
bool rust_helper_rgmem_hugetlb_folio_plain(struct folio *folio)
{
	return !folio->private && !hugetlb_cgroup_from_folio(folio) &&
	       !hugetlb_cgroup_from_folio_rsvd(folio);
}

unsigned long rust_helper_rgmem_page_private(struct folio *folio)
{
	return page_private(&folio->page);
}

void rust_helper_rgmem_hugetlb_split_frozen_folio(struct folio *folio,
						  unsigned int order)
{
	hugetlb_split_frozen_folio(folio, order);
}

void rust_helper_rgmem_hugetlb_reshape_frozen_pieces(struct folio *folio,
						     unsigned int order,
						     unsigned int new_order)
{
	hugetlb_reshape_frozen_pieces(&folio->page, order, new_order);
}

void rust_helper_rgmem_hugetlb_merge_frozen_folio(struct folio *folio,
						  unsigned int order)
{
	hugetlb_merge_frozen_folio(&folio->page, order);
}

int rust_helper_rgmem_hugetlb_restore_frozen_vmemmap(struct folio *folio)
{
	return hugetlb_restore_frozen_vmemmap(folio);
}

int rust_helper_rgmem_hugetlb_retire_poisoned_folio(struct folio *folio)
{
	return hugetlb_retire_poisoned_folio(folio);
}

long rust_helper_rgmem_hugetlb_folio_hwpoison_blocks(struct folio *folio,
						     unsigned int order,
						     unsigned long *blocks)
{
	return hugetlb_folio_hwpoison_blocks(folio, order, blocks);
}

void rust_helper_rgmem_folio_clear_hugetlb_hwpoison(struct folio *folio)
{
	folio_clear_hugetlb_hwpoison(folio);
}

void rust_helper_rgmem_hugetlb_folio_relist_hwpoison(struct folio *folio)
{
	hugetlb_folio_relist_hwpoison(folio);
}

#endif /* CONFIG_HUGETLB_PAGE */
