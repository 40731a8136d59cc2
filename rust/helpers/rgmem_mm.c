// SPDX-License-Identifier: GPL-2.0

#include <linux/maple_tree.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/rcupdate.h>
#include <linux/uaccess.h>

void rust_helper_mt_init_flags(struct maple_tree *mt, unsigned int flags)
{
	mt_init_flags(mt, flags);
}

void rust_helper_mt_set_external_lock(struct maple_tree *mt,
				      struct address_space *mapping)
{
	mt_set_external_lock(mt, &mapping->invalidate_lock);
}

void rust_helper_mt_clear_external_lock(struct maple_tree *mt)
{
	mt_on_stack(*mt);
}

void rust_helper_folio_batch_release(struct folio_batch *fbatch)
{
	folio_batch_release(fbatch);
}

struct page *rust_helper_folio_file_page(struct folio *folio, pgoff_t index)
{
	return folio_file_page(folio, index);
}

void rust_helper_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

void rust_helper_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rust_helper_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void rust_helper_rgmem_pagefault_disable(void)
{
	pagefault_disable();
}

void rust_helper_rgmem_pagefault_enable(void)
{
	pagefault_enable();
}

struct page *rust_helper_rgmem_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

#ifdef CONFIG_MEMORY_FAILURE
long rust_helper_rgmem_num_poisoned_pages(void)
{
	return atomic_long_read(&num_poisoned_pages);
}
#endif
