// SPDX-License-Identifier: GPL-2.0

#include <linux/fs.h>
#include <linux/pagemap.h>

void rust_helper_filemap_invalidate_lock(struct address_space *mapping)
{
	filemap_invalidate_lock(mapping);
}

void rust_helper_filemap_invalidate_unlock(struct address_space *mapping)
{
	filemap_invalidate_unlock(mapping);
}

void rust_helper_filemap_invalidate_lock_shared(struct address_space *mapping)
{
	filemap_invalidate_lock_shared(mapping);
}

void rust_helper_filemap_invalidate_unlock_shared(struct address_space *mapping)
{
	filemap_invalidate_unlock_shared(mapping);
}

struct folio *rust_helper_filemap_alloc_folio(gfp_t gfp, unsigned int order)
{
	return filemap_alloc_folio(gfp, order);
}

void rust_helper_mapping_set_gfp_mask(struct address_space *mapping, gfp_t gfp)
{
	mapping_set_gfp_mask(mapping, gfp);
}

void rust_helper_mapping_set_inaccessible(struct address_space *mapping)
{
	mapping_set_inaccessible(mapping);
}

void rust_helper_mapping_set_large_folios(struct address_space *mapping)
{
	mapping_set_large_folios(mapping);
}

loff_t rust_helper_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

void rust_helper_i_size_write(struct inode *inode, loff_t size)
{
	i_size_write(inode, size);
}

void rust_helper_rgmem_xas_init(struct xa_state *xas, struct xarray *xa,
				unsigned long index, unsigned int order)
{
	XA_STATE_ORDER(init, xa, index, order);

	*xas = init;
}

int rust_helper_rgmem_xas_error(const struct xa_state *xas)
{
	return xas_error(xas);
}

void rust_helper_rgmem_xas_destroy(struct xa_state *xas)
{
	xas_destroy(xas);
}

void rust_helper_rgmem_xa_lock_irq(struct xarray *xa)
{
	xa_lock_irq(xa);
}

void rust_helper_rgmem_xa_unlock_irq(struct xarray *xa)
{
	xa_unlock_irq(xa);
}
