/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#include <asm/unistd_64.h>

/*
 * lkl's own calls, in the range asm-generic leaves to architectures (244 to
 * 259). See arch/lkl/kernel/notify.c.
 */
#define __NR_lkl_notify_add	244
#define __NR_lkl_notify_del	245
