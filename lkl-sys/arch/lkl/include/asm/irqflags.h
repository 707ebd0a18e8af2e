/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_IRQFLAGS_H
#define _ASM_LKL_IRQFLAGS_H

#define ARCH_IRQ_ENABLED	1
#define ARCH_IRQ_DISABLED	0

#ifndef __ASSEMBLY__
/* Interrupt masking of the one virtual CPU: see kernel/irq.c. */
unsigned long arch_local_save_flags(void);
void arch_local_irq_restore(unsigned long flags);

#include <asm-generic/irqflags.h>
#endif

#endif /* _ASM_LKL_IRQFLAGS_H */
