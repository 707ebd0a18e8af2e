/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_STRING_H
#define _ASM_LKL_STRING_H

#include <linux/types.h>

/* The host's own, through the host ops (kernel/string.c). */
#define __HAVE_ARCH_MEMCPY
void *memcpy(void *dst, const void *src, size_t n);
#define __HAVE_ARCH_MEMMOVE
void *memmove(void *dst, const void *src, size_t n);
#define __HAVE_ARCH_MEMSET
void *memset(void *s, int c, size_t n);

#endif
