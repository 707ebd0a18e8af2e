/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#include <asm/unistd_64.h>

/*
 * lkl's own calls, in the range asm-generic leaves to architectures (244 to
 * 259). See arch/lkl/kernel/notify.c and busy_poll.c.
 */
#define __NR_lkl_notify_add	244
#define __NR_lkl_notify_del	245
#define __NR_lkl_busy_wait	246
