/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_CHECKSUM_H
#define _ASM_LKL_CHECKSUM_H

/*
 * The generic checksum code with the arch's do_csum (kernel/csum.c): the
 * generic one adds 32-bit words with a branch per word, and finishing the
 * checksum of every packet sent is much of what lkl's tx costs.
 */
#define do_csum do_csum
unsigned int do_csum(const unsigned char *buff, int len);

#include <asm-generic/checksum.h>

#endif
