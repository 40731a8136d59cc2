// SPDX-License-Identifier: GPL-2.0

#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>

void rust_helper_folio_get(struct folio *folio)
{
	folio_get(folio);
}

void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

unsigned long rust_helper_folio_pfn(struct folio *folio)
{
	return folio_pfn(folio);
}

unsigned int rust_helper_folio_order(struct folio *folio)
{
	return folio_order(folio);
}

int rust_helper_folio_ref_count(struct folio *folio)
{
	return folio_ref_count(folio);
}

void rust_helper_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

void rust_helper_folio_clear_page(struct folio *folio, unsigned long i)
{
	clear_highpage(folio_page(folio, i));
}

bool rust_helper_rgmem_folio_ref_freeze(struct folio *folio, int count)
{
	return folio_ref_freeze(folio, count);
}

void rust_helper_rgmem_folio_ref_unfreeze(struct folio *folio, int count)
{
	folio_ref_unfreeze(folio, count);
}

/* The folio headed by page @n of @folio's pages, once it heads one. */
struct folio *rust_helper_rgmem_folio_nth(struct folio *folio, unsigned long n)
{
	return (struct folio *)folio_page(folio, n);
}

struct folio *rust_helper_rgmem_pfn_folio(unsigned long pfn)
{
	return pfn_folio(pfn);
}

void rust_helper_rgmem_lruvec_stat_mod_folio(struct folio *folio,
					     enum node_stat_item idx, int val)
{
	lruvec_stat_mod_folio(folio, idx, val);
}

bool rust_helper_rgmem_page_hwpoison(struct folio *folio, unsigned long n)
{
	return PageHWPoison(folio_page(folio, n));
}
