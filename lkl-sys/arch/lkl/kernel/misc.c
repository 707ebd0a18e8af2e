// SPDX-License-Identifier: GPL-2.0-only
/* What every architecture must provide and lkl has little to say about. */
#include <linux/kernel.h>
#include <linux/printk.h>
#include <linux/reboot.h>
#include <linux/sched/debug.h>
#include <linux/seq_file.h>
#include <linux/interrupt.h>
#include <linux/panic_notifier.h>
#include <linux/notifier.h>
#include <linux/init.h>
#include <linux/ptrace.h>
#include "internal.h"

/* lkl_halt() does the work; the reboot syscall has nothing to stop. */
void machine_halt(void)
{
}

void machine_power_off(void)
{
}

void machine_restart(char *cmd)
{
}

/* There are no kernel stacks of our own to walk. */
void show_stack(struct task_struct *task, unsigned long *sp,
		const char *loglvl)
{
	printk("%sCall trace not available on lkl\n", loglvl);
}

void show_regs(struct pt_regs *regs)
{
	show_stack(NULL, NULL, KERN_DEFAULT);
}

/* Tasks have no user mode state: nothing to reset on exec or ptrace. */
void flush_thread(void)
{
}

void ptrace_disable(struct task_struct *child)
{
}

long arch_ptrace(struct task_struct *child, long request, unsigned long addr,
		 unsigned long data)
{
	return ptrace_request(child, request, addr, data);
}

static int cpuinfo_show(struct seq_file *m, void *v)
{
	seq_puts(m, "processor\t: 0\nmodel name\t: lkl\n");
	return 0;
}

static void *cpuinfo_start(struct seq_file *m, loff_t *pos)
{
	return *pos == 0 ? (void *)1 : NULL;
}

static void *cpuinfo_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return NULL;
}

static void cpuinfo_stop(struct seq_file *m, void *v)
{
}

const struct seq_operations cpuinfo_op = {
	.start	= cpuinfo_start,
	.next	= cpuinfo_next,
	.stop	= cpuinfo_stop,
	.show	= cpuinfo_show,
};

int arch_show_interrupts(struct seq_file *p, int prec)
{
	return 0;
}

static int lkl_panic(struct notifier_block *nb, unsigned long event,
		     void *msg)
{
	lkl_ops->panic();
	return NOTIFY_DONE;
}

static struct notifier_block panic_nb = {
	.notifier_call = lkl_panic,
	.priority = INT_MIN,
};

static int __init lkl_panic_init(void)
{
	atomic_notifier_chain_register(&panic_notifier_list, &panic_nb);
	return 0;
}
pure_initcall(lkl_panic_init);
