/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_CPU_H
#define _ASM_LKL_CPU_H

/*
 * The single virtual CPU. Exactly one host thread owns it at a time; only
 * the owner runs kernel code. See kernel/cpu.c.
 */
int lkl_cpu_get(void);
void lkl_cpu_put(void);
int lkl_cpu_try_run_irq(int irq);
void lkl_cpu_change_owner(lkl_thread_t owner);
int lkl_cpu_init(void);
void lkl_cpu_cleanup(void);
void lkl_cpu_wait_idle(void);
void lkl_cpu_wakeup_idle(void);
void lkl_cpu_shutdown(void);

#endif
