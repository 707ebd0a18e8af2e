// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel tasks on host threads.
 *
 * Kernel threads (and the idle task) each run on a host thread of their own
 * and, while switched out, park on their own semaphore. A context switch
 * wakes the next task's thread and parks the previous one.
 *
 * Host tasks stand for application threads that make system calls. They
 * have no thread of their own: the application thread runs them while it is
 * inside lkl_syscall(). To switch away from a host task on behalf of some
 * host thread, lkl_thread_sched_jb() marks it TIF_SCHED_JB and calls
 * schedule(); __switch_to then wakes the next task and jumps back to the
 * calling thread instead of parking it, because the host task has nothing
 * to park on.
 *
 * The idle host task is a kernel thread flagged as host task. The idle loop
 * switches to it, and it gives the CPU up: so whenever the CPU is free,
 * "current" is a host task and an application thread can switch away from
 * it directly, without a round trip through another thread.
 */
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/cpu.h>
#include <linux/string.h>
#include <asm/host_ops.h>
#include <asm/switch_to.h>
#include "internal.h"

struct thread_info *lkl_current_ti = &init_thread_info;

/* The task switched away from last; what __switch_to must return. */
static struct task_struct *abs_prev = &init_task;

static struct task_struct *lkl_idle_host_task;

/* Threads leaving at halt report here. */
static struct lkl_sem *halt_sem;

int lkl_threads_init(void)
{
	init_task.thread.sched_sem = lkl_ops->sem_alloc(0);
	halt_sem = lkl_ops->sem_alloc(0);
	if (!init_task.thread.sched_sem || !halt_sem)
		return -ENOMEM;
	return 0;
}

/* Copy the buffer first: the next task may free ours once it runs. */
static void __noreturn wake_next_and_jump(struct thread_struct *next,
					  lkl_jmp_buf from)
{
	lkl_jmp_buf jb;

	memcpy(jb, from, sizeof(jb));
	lkl_ops->sem_up(next->sched_sem);
	__builtin_longjmp(jb, 1);
}

struct task_struct *__switch_to(struct task_struct *prev,
				struct task_struct *next)
{
	struct thread_struct *p = &prev->thread;
	struct thread_struct *n = &next->thread;
	struct thread_info *prev_ti = task_thread_info(prev);

	abs_prev = prev;
	lkl_current_ti = task_thread_info(next);
	lkl_cpu_set_owner(n->tid);

	if (test_ti_thread_flag(prev_ti, TIF_SCHED_JB)) {
		clear_ti_thread_flag(prev_ti, TIF_SCHED_JB);
		wake_next_and_jump(n, p->sched_jb);
	}
	if (READ_ONCE(prev->__state) == TASK_DEAD) {
		p->own_thread = false;
		wake_next_and_jump(n, p->exit_jb);
	}

	p->parked = true;
	lkl_ops->sem_up(n->sched_sem);
	lkl_ops->sem_down(p->sched_sem);
	p->parked = false;

	if (unlikely(lkl_halting))
		__builtin_longjmp(p->exit_jb, 1);

	return abs_prev;
}

/*
 * Switch the current host task out on behalf of the calling host thread.
 * Returns true when the CPU went to another task (the caller no longer owns
 * it), false when schedule() found the current task runnable again.
 */
bool lkl_thread_sched_jb(void)
{
	struct task_struct *self = current;

	set_ti_thread_flag(task_thread_info(self), TIF_SCHED_JB);
	set_current_state(TASK_UNINTERRUPTIBLE);
	if (__builtin_setjmp(self->thread.sched_jb))
		return true;
	schedule();
	clear_ti_thread_flag(task_thread_info(self), TIF_SCHED_JB);
	return false;
}

/* Make task, a host task, current on the calling host thread. */
void lkl_switch_to_host_task(struct task_struct *task)
{
	while (current != task) {
		task->thread.tid = lkl_ops->thread_self();
		wake_up_process(task);
		if (lkl_thread_sched_jb()) {
			lkl_ops->sem_down(task->thread.sched_sem);
			schedule_tail(abs_prev);
		}
	}
}

static void thread_bootstrap(void *arg)
{
	struct task_struct *task = arg;
	struct thread_struct *t = &task->thread;
	int ret;

	lkl_ops->sem_down(t->sched_sem);
	if (!lkl_halting && !__builtin_setjmp(t->exit_jb)) {
		schedule_tail(abs_prev);
		ret = t->fn(t->fn_arg);
		/*
		 * A user mode thread whose function returns 0 has exec'd and
		 * would now enter user space. Only init does that: it becomes
		 * the template of all host tasks and its thread ends here.
		 */
		if (ret == 0 && !(current->flags & PF_KTHREAD)) {
			lkl_become_host0();
			return;
		}
		do_exit(ret);
	}
	/* The task died (do_exit), or the kernel halts. */
	lkl_thread_left();
}

/* The host thread of a task is about to end. */
void lkl_thread_left(void)
{
	if (lkl_halting)
		lkl_ops->sem_up(halt_sem);
}

/* Only its address matters: it marks a clone as a host task in copy_thread. */
int lkl_host_task_stub(void *unused)
{
	return 0;
}

int copy_thread(struct task_struct *p, const struct kernel_clone_args *args)
{
	struct thread_struct *t = &p->thread;
	struct thread_info *ti = task_thread_info(p);

	/* fork()/clone() from a host task has no code to run: no user mode. */
	if (!args->fn)
		return -EINVAL;

	memset(t, 0, sizeof(*t));
	clear_ti_thread_flag(ti, TIF_HOST_THREAD);
	clear_ti_thread_flag(ti, TIF_SCHED_JB);
	t->sched_sem = lkl_ops->sem_alloc(0);
	if (!t->sched_sem)
		return -ENOMEM;

	if (args->fn == lkl_host_task_stub) {
		set_ti_thread_flag(ti, TIF_HOST_THREAD);
		t->tid = lkl_ops->thread_self();
		return 0;
	}

	t->fn = args->fn;
	t->fn_arg = args->fn_arg;
	t->own_thread = true;
	t->tid = lkl_ops->thread_create(thread_bootstrap, p);
	if (!t->tid) {
		lkl_ops->sem_free(t->sched_sem);
		t->sched_sem = NULL;
		return -ENOMEM;
	}
	return 0;
}

void arch_release_task_struct(struct task_struct *tsk)
{
	if (tsk->thread.sched_sem)
		lkl_ops->sem_free(tsk->thread.sched_sem);
	tsk->thread.sched_sem = NULL;
}

static int idle_host_task_loop(void *unused)
{
	struct task_struct *self = current;

	set_thread_flag(TIF_HOST_THREAD);
	for (;;) {
		lkl_cpu_put();
		lkl_ops->sem_down(self->thread.sched_sem);
		if (lkl_halting)
			__builtin_longjmp(self->thread.exit_jb, 1);
		schedule_tail(abs_prev);
	}
	return 0;
}

int lkl_start_idle_host_task(void)
{
	struct task_struct *task;
	pid_t pid;

	pid = kernel_thread(idle_host_task_loop, NULL, "idle_host_task",
			    CLONE_FS | CLONE_FILES);
	if (pid < 0)
		return pid;
	rcu_read_lock();
	task = find_task_by_pid_ns(pid, &init_pid_ns);
	rcu_read_unlock();
	lkl_idle_host_task = task;
	return 0;
}

void arch_cpu_idle(void)
{
	/* Interrupts that arrived meanwhile run here; they end the idle. */
	local_irq_enable();
	if (lkl_idle_host_task && !need_resched())
		wake_up_process(lkl_idle_host_task);
	local_irq_disable();
}

static void release_sem(struct task_struct *t)
{
	if (t->thread.sched_sem && !t->thread.parked) {
		lkl_ops->sem_free(t->thread.sched_sem);
		t->thread.sched_sem = NULL;
	}
}

/*
 * End every host thread the kernel started, and free the semaphores.
 * Application threads still blocked inside a system call keep theirs: they
 * stay parked on it for good (the process is exiting).
 */
int lkl_threads_halt(void)
{
	struct task_struct *p, *t;
	int threads = 0;

	for_each_process_thread(p, t) {
		if (t->thread.own_thread && t != current) {
			lkl_ops->sem_up(t->thread.sched_sem);
			threads++;
		}
	}
	/* the idle task is not on the task list */
	if (init_task.thread.own_thread) {
		lkl_ops->sem_up(init_task.thread.sched_sem);
		threads++;
	}
	while (threads--)
		lkl_ops->sem_down(halt_sem);

	for_each_process_thread(p, t)
		release_sem(t);
	release_sem(&init_task);
	lkl_ops->sem_free(halt_sem);
	return 0;
}
