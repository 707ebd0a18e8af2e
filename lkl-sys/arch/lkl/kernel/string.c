// SPDX-License-Identifier: GPL-2.0-only
/*
 * memcpy, memmove and memset are the host's (see struct lkl_host_ops): the
 * host C library picks the fastest way for the machine it runs on, which a
 * portable kernel port cannot, and lib/string.c's fallbacks copy a byte at
 * a time. No kernel code runs before lkl_ops is set.
 */
#include <linux/export.h>
#include <linux/string.h>
#include <asm/host_ops.h>

void *memcpy(void *dst, const void *src, size_t n)
{
	return lkl_ops->memcpy(dst, src, n);
}
EXPORT_SYMBOL(memcpy);

void *memmove(void *dst, const void *src, size_t n)
{
	return lkl_ops->memmove(dst, src, n);
}
EXPORT_SYMBOL(memmove);

void *memset(void *s, int c, size_t n)
{
	return lkl_ops->memset(s, c, n);
}
EXPORT_SYMBOL(memset);
