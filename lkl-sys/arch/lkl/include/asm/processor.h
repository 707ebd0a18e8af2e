/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_PROCESSOR_H
#define _ASM_LKL_PROCESSOR_H

#include <asm/host_ops.h>

struct task_struct;

/* A buffer for __builtin_setjmp/__builtin_longjmp (five words). */
typedef unsigned long lkl_jmp_buf[5];

/* How a task is backed by a host thread; see kernel/threads.c. */
struct thread_struct {
	/* The host thread running this task parks here while switched out. */
	struct lkl_sem *sched_sem;
	/* The host thread that runs the task (for host tasks: the last one). */
	lkl_thread_t tid;
	/* The task has a host thread of its own (kernel threads, idle). */
	bool own_thread;
	/* The host thread is parked in __switch_to. */
	bool parked;
	/* Where the host thread goes when the task died or the kernel halts. */
	lkl_jmp_buf exit_jb;
	/* Where a schedule() made on a host thread's behalf returns to. */
	lkl_jmp_buf sched_jb;
	int (*fn)(void *);
	void *fn_arg;
};

#define INIT_THREAD { .own_thread = true }

#define TASK_SIZE	(~0UL)
#define TASK_UNMAPPED_BASE	0
#define STACK_TOP	TASK_SIZE
#define STACK_TOP_MAX	STACK_TOP

#define cpu_relax()	barrier()

#define KSTK_EIP(tsk)	(0)
#define KSTK_ESP(tsk)	(0)

static inline unsigned long __get_wchan(struct task_struct *p)
{
	return 0;
}

static inline void prefetch(const void *x) { }
static inline void prefetchw(const void *x) { }

#define start_thread(regs, pc, sp) do { } while (0)

#endif /* _ASM_LKL_PROCESSOR_H */
