/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_HOST_OPS_H
#define _ASM_LKL_HOST_OPS_H

#include <uapi/asm/host_ops.h>

extern const struct lkl_host_ops *lkl_ops;

#endif
