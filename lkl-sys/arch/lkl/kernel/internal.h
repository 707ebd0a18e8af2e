/* SPDX-License-Identifier: GPL-2.0-only */
/* Functions the files of the port share with each other, and nobody else. */
#ifndef _LKL_KERNEL_INTERNAL_H
#define _LKL_KERNEL_INTERNAL_H

#include <linux/sched.h>
#include <asm/host_ops.h>
#include <asm/thread_info.h>

/* setup.c */
extern bool lkl_halting;
void lkl_boot_done(int result);
__printf(1, 2) void lkl_boot_error(const char *fmt, ...);

/* cpu.c: the one virtual CPU, see the comment there */
int lkl_cpu_get(void);
void lkl_cpu_put(void);
int lkl_cpu_claim_for_irq(int irq);
void lkl_cpu_set_owner(lkl_thread_t owner);
int lkl_cpu_init(void);
void lkl_cpu_shutdown(void);
bool lkl_cpu_wanted(void);

/* sched.c */
bool lkl_other_task_runnable(void);

/* irq.c */
void lkl_set_irq_pending(int irq);
void lkl_run_pending_irqs(void);
bool lkl_irqs_pending(void);

/* threads.c */
int lkl_threads_init(void);
bool lkl_thread_sched_jb(void);
int lkl_host_task_stub(void *unused);
void lkl_switch_to_host_task(struct task_struct *task);
int lkl_start_idle_host_task(void);
int lkl_threads_halt(void);
void lkl_thread_left(void);

/* syscalls.c */
void lkl_syscalls_cleanup(void);
int lkl_become_host0(void);
int lkl_kernel_enter(void);
void lkl_kernel_exit(void);

/* notify.c */
long sys_lkl_notify_add(int fd, void (*fn)(void *), void *arg);
long sys_lkl_notify_del(unsigned long handle);

/* busy_poll.c */
long sys_lkl_busy_wait(int fd, unsigned int events, unsigned int spent_us);

/* netdev.c: the device busy waiters poll, and the end of their polling */
unsigned int lkl_netdev_napi_id(void);
void lkl_netdev_busy_end(void);

/* time.c */
void lkl_time_cleanup(void);

/* mem.c */
int lkl_mem_check_param(const char *val);
void bootmem_init(void);
void lkl_mem_cleanup(void);

#endif
