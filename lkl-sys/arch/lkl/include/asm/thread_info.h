/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_THREAD_INFO_H
#define _ASM_LKL_THREAD_INFO_H

#define THREAD_SIZE_ORDER	0
#define THREAD_SIZE		(PAGE_SIZE << THREAD_SIZE_ORDER)

#ifndef __ASSEMBLY__
#include <asm/types.h>
#include <asm/page.h>
#include <asm/ptrace.h>

/*
 * The kernel stack of a task is its host thread's stack; the "stack"
 * allocation only holds this structure. The port's own per-task state is in
 * struct thread_struct (asm/processor.h), which lives as long as the task.
 */
struct thread_info {
	unsigned long flags;
	int preempt_count;
	struct task_struct *task;
	struct pt_regs regs;
};

#define INIT_THREAD_INFO(tsk)			\
{						\
	.task		= &tsk,			\
	.flags		= 0,			\
	.preempt_count	= INIT_PREEMPT_COUNT,	\
}

/* Only the CPU owner runs kernel code, so one global names "current". */
extern struct thread_info *lkl_current_ti;

static inline struct thread_info *current_thread_info(void)
{
	return lkl_current_ti;
}

#define task_pt_regs(tsk)	(&task_thread_info(tsk)->regs)

#endif /* __ASSEMBLY__ */

#define TIF_SYSCALL_TRACE	0
#define TIF_NOTIFY_RESUME	1
#define TIF_SIGPENDING		2
#define TIF_NEED_RESCHED	3
#define TIF_RESTORE_SIGMASK	4
#define TIF_MEMDIE		5
#define TIF_NOTIFY_SIGNAL	6
/* The task stands for a host thread that makes system calls. */
#define TIF_HOST_THREAD		7
/* schedule() runs for a host task and must return through jb. */
#define TIF_SCHED_JB		8

#define _TIF_SIGPENDING		(1 << TIF_SIGPENDING)
#define _TIF_NEED_RESCHED	(1 << TIF_NEED_RESCHED)
#define _TIF_NOTIFY_RESUME	(1 << TIF_NOTIFY_RESUME)
#define _TIF_NOTIFY_SIGNAL	(1 << TIF_NOTIFY_SIGNAL)

#endif /* _ASM_LKL_THREAD_INFO_H */
