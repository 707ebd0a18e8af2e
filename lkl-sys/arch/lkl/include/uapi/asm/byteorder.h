/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
#ifndef _ASM_UAPI_LKL_BYTEORDER_H
#define _ASM_UAPI_LKL_BYTEORDER_H

/* The port only targets little-endian 64-bit hosts (x86-64, arm64). */
#include <linux/byteorder/little_endian.h>

#endif
