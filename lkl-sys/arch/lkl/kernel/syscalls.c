// SPDX-License-Identifier: GPL-2.0-only
/*
 * System calls from host threads.
 *
 * Each host thread that calls in gets a host task of its own, a thread of
 * init's thread group cloned from init ("host0") so that all of them share
 * one file table. The task is found through host TLS and retired by the TLS
 * destructor when the host thread exits.
 */
#include <linux/syscalls.h>
#include <linux/sched/task.h>
#include <linux/sched/signal.h>
#include <linux/task_work.h>
#include <linux/pid_namespace.h>
#include <asm/unistd.h>
#include "internal.h"

/* No MMU: mmap of anonymous memory or files is what NOMMU Linux offers. */
SYSCALL_DEFINE6(mmap, unsigned long, addr, unsigned long, len,
		unsigned long, prot, unsigned long, flags, unsigned long, fd,
		unsigned long, off)
{
	if (off & ~PAGE_MASK)
		return -EINVAL;
	return ksys_mmap_pgoff(addr, len, prot, flags, fd, off >> PAGE_SHIFT);
}

typedef long (*syscall_fn_t)(long, long, long, long, long, long);

#undef __SYSCALL
#define __SYSCALL(nr, call)	[nr] = (call),
#define __SYSCALL_WITH_COMPAT(nr, native, compat)	__SYSCALL(nr, native)
#define __SYSCALL_NORETURN(nr, call)	__SYSCALL(nr, call)
/* There are no signal frames to return from. */
#define sys_rt_sigreturn	sys_ni_syscall

static void *syscall_table[__NR_syscalls] = {
	[0 ... __NR_syscalls - 1] = sys_ni_syscall,
#include <asm/syscall_table_64.h>
	[__NR_lkl_notify_add] = sys_lkl_notify_add,
	[__NR_lkl_notify_del] = sys_lkl_notify_del,
	[__NR_lkl_busy_wait] = sys_lkl_busy_wait,
};

static struct lkl_tls_key *task_key;
static struct task_struct *host0;

#define HOST_TASK_CLONE_FLAGS \
	(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)

static struct task_struct *new_host_task(void)
{
	struct task_struct *task;
	pid_t pid;

	lkl_switch_to_host_task(host0);
	pid = user_mode_thread(lkl_host_task_stub, NULL, HOST_TASK_CLONE_FLAGS);
	if (pid < 0)
		return ERR_PTR(pid);
	rcu_read_lock();
	task = find_task_by_pid_ns(pid, &init_pid_ns);
	rcu_read_unlock();
	return task;
}

/* TLS destructor: the host thread exits, so does its task. */
static void host_task_exit(void *arg)
{
	struct task_struct *task = arg;

	if (lkl_cpu_get() < 0)
		return;
	lkl_switch_to_host_task(task);
	if (!__builtin_setjmp(task->thread.exit_jb))
		do_exit(0);
	/* Back from the final switch; the CPU belongs to the next task. */
}

/* With the CPU held: make the calling host thread's own task current. */
static int lkl_enter_host_task(void)
{
	struct task_struct *task;
	int ret;

	task = lkl_ops->tls_get(task_key);
	if (!task) {
		task = new_host_task();
		if (IS_ERR(task))
			return PTR_ERR(task);
		ret = lkl_ops->tls_set(task_key, task);
		if (ret < 0)
			return ret;
	}
	lkl_switch_to_host_task(task);
	return 0;
}

/*
 * The way into the kernel for entry points: take the CPU and run as the
 * calling thread's host task. lkl_kernel_exit() does what a return to user
 * mode would do and gives the CPU up.
 */
int lkl_kernel_enter(void)
{
	int ret;

	ret = lkl_cpu_get();
	if (ret < 0)
		return ret;
	ret = lkl_enter_host_task();
	if (ret < 0)
		lkl_cpu_put();
	return ret;
}

void lkl_kernel_exit(void)
{
	/* e.g. the final fput of a close() */
	if (current->task_works)
		task_work_run();
	lkl_cpu_put();
}

long lkl_syscall(long nr, long *params)
{
	long ret;

	if (nr < 0 || nr >= __NR_syscalls)
		return -ENOSYS;

	ret = lkl_kernel_enter();
	if (ret < 0)
		return ret;

	ret = ((syscall_fn_t)syscall_table[nr])(params[0], params[1], params[2],
						params[3], params[4], params[5]);

	/* No signal handler ever runs in lkl: a restart is an interruption. */
	if (ret == -ERESTARTSYS || ret == -ERESTARTNOINTR ||
	    ret == -ERESTARTNOHAND || ret == -ERESTART_RESTARTBLOCK)
		ret = -EINTR;
	lkl_kernel_exit();
	return ret;
}

/*
 * init has "exec'd": make it the template of host tasks and start the idle
 * host task, then give up the CPU and let lkl_start_kernel return.
 */
int lkl_become_host0(void)
{
	int i, err;

	/*
	 * Nothing ever runs a signal handler in lkl; a signal left pending
	 * (SIGPIPE from a send) would make every later wait return early.
	 */
	spin_lock_irq(&current->sighand->siglock);
	for (i = 0; i < _NSIG; i++)
		current->sighand->action[i].sa.sa_handler = SIG_IGN;
	spin_unlock_irq(&current->sighand->siglock);
	flush_signals(current);

	task_key = lkl_ops->tls_alloc(host_task_exit);
	err = task_key ? lkl_start_idle_host_task() : -ENOMEM;

	host0 = current;
	set_task_comm(current, "host0");
	current->thread.own_thread = false;
	set_thread_flag(TIF_HOST_THREAD);
	lkl_cpu_put();
	lkl_boot_done(err);
	return err;
}

void lkl_syscalls_cleanup(void)
{
	if (task_key)
		lkl_ops->tls_free(task_key);
	task_key = NULL;
}
