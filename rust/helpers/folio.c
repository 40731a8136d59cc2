// SPDX-License-Identifier: GPL-2.0

#include <linux/highmem.h>
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

bool rust_helper_folio_test_uptodate(struct folio *folio)
{
	return folio_test_uptodate(folio);
}

void rust_helper_folio_mark_uptodate(struct folio *folio)
{
	folio_mark_uptodate(folio);
}

bool rust_helper_folio_test_hwpoison(struct folio *folio)
{
	return folio_test_hwpoison(folio);
}

void rust_helper_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

void rust_helper_folio_clear_page(struct folio *folio, unsigned long i)
{
	clear_highpage(folio_page(folio, i));
}

pgoff_t rust_helper_folio_index(struct folio *folio)
{
	return folio_index(folio);
}

pgoff_t rust_helper_folio_next_index(struct folio *folio)
{
	return folio_next_index(folio);
}
