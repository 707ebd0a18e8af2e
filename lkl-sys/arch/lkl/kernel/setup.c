// SPDX-License-Identifier: GPL-2.0-only
/*
 * Boot and halt.
 *
 * lkl_start_kernel() starts a host thread that runs start_kernel() and
 * becomes the idle task. init (pid 1) runs the initcalls and "execs" the
 * lkl init (init.c); then it becomes host0, the template of host tasks,
 * and lkl_start_kernel() returns.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/sched/task.h>
#include <linux/start_kernel.h>
#include <linux/string.h>
#include <asm/setup.h>
#include <asm/host_ops.h>
#include "internal.h"

const struct lkl_host_ops *lkl_ops;
bool lkl_halting;

static struct lkl_sem *boot_sem;
static int boot_result;

void __init setup_arch(char **cmdline_p)
{
	*cmdline_p = boot_command_line;
	parse_early_param();
	bootmem_init();
}

/* Before boot there is no console yet: say it through the host directly. */
void lkl_boot_error(const char *fmt, ...)
{
	char buf[256];
	va_list args;
	int len;

	va_start(args, fmt);
	len = vscnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	lkl_ops->print(buf, len);
}

void lkl_boot_done(int result)
{
	boot_result = result;
	lkl_ops->sem_up(boot_sem);
}

static void __ref run_kernel(void *unused)
{
	init_task.thread.tid = lkl_ops->thread_self();
	lkl_cpu_get();
	if (!__builtin_setjmp(init_task.thread.exit_jb))
		start_kernel();
	/* lkl_halt() woke the idle task: leave. */
	lkl_thread_left();
}

/*
 * The kernel hands parameters it does not know to init, which ignores
 * them; a user's typo would go unnoticed. Check them all up front.
 */
static char param_buf[COMMAND_LINE_SIZE] __initdata;

static bool known_setup_param(const char *param, const char *val)
{
	const struct obs_kernel_param *p;
	size_t n = strlen(param);

	for (p = __setup_start; p < __setup_end; p++) {
		size_t len = strlen(p->str);
		bool takes_value = len && p->str[len - 1] == '=';

		if (takes_value ? (len - 1 == n && val &&
				   parameqn(param, p->str, n)) :
				  parameq(param, p->str))
			return true;
	}
	return false;
}

static int __init check_param(char *param, char *val, const char *unused,
			      void *arg)
{
	const struct kernel_param *kp;

	if (!strcmp(param, "mem"))
		return lkl_mem_check_param(val);
	if (known_setup_param(param, val))
		return 0;
	for (kp = __start___param; kp < __stop___param; kp++)
		if (parameq(param, kp->name))
			return 0;
	lkl_boot_error("lkl: unknown kernel command line parameter '%s'\n",
		       param);
	return -EINVAL;
}

static int __init check_cmdline(const char *cmdline)
{
	char *err;

	if (strscpy(param_buf, cmdline, sizeof(param_buf)) < 0) {
		lkl_boot_error("lkl: kernel command line longer than %d bytes\n",
			       COMMAND_LINE_SIZE - 1);
		return -EINVAL;
	}
	err = parse_args("lkl", param_buf, NULL, 0, 0, 0, NULL, check_param);
	return IS_ERR(err) ? PTR_ERR(err) : 0;
}

int __ref lkl_start_kernel(const struct lkl_host_ops *ops, const char *cmdline)
{
	int ret;

	if (lkl_ops)
		return -EBUSY;
	lkl_ops = ops;

	ret = check_cmdline(cmdline);
	if (ret)
		return ret;
	strscpy(boot_command_line, cmdline, COMMAND_LINE_SIZE);

	ret = lkl_cpu_init();
	if (!ret)
		ret = lkl_threads_init();
	if (ret)
		return ret;
	boot_sem = lkl_ops->sem_alloc(0);
	if (!boot_sem)
		return -ENOMEM;

	if (!lkl_ops->thread_create(run_kernel, NULL))
		return -ENOMEM;
	lkl_ops->sem_down(boot_sem);
	lkl_ops->sem_free(boot_sem);
	return boot_result;
}

long lkl_halt(void)
{
	long ret;

	/* Tear down from a task of our own, never from one we must stop. */
	ret = lkl_kernel_enter();
	if (ret < 0)
		return ret;
	lkl_halting = true;
	lkl_time_cleanup();
	lkl_threads_halt();
	lkl_syscalls_cleanup();
	lkl_cpu_shutdown();
	lkl_mem_cleanup();
	return 0;
}
