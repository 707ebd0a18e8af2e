/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#ifndef _ASM_UAPI_LKL_SIGCONTEXT_H
#define _ASM_UAPI_LKL_SIGCONTEXT_H

/* Signal handlers never run inside lkl: the context is empty. */
struct sigcontext {
	unsigned long unused;
};

#endif
