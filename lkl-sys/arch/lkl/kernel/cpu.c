// SPDX-License-Identifier: GPL-2.0-only
/*
 * The virtual CPU.
 *
 * lkl is !SMP: at any moment at most one host thread runs kernel code, the
 * CPU owner. A host thread becomes owner through lkl_cpu_get() (system
 * calls, interrupts raised while the CPU is free) or because a context
 * switch handed ownership to it (__switch_to sets the owner to the next
 * task's thread before waking it). lkl_cpu_put() gives the CPU up; before
 * it does, it runs interrupts that arrived meanwhile, and if the owner is a
 * host task while other tasks are runnable it schedules them instead of
 * leaving them stranded.
 *
 * count is the owner's nesting depth: ownership handed over by a context
 * switch keeps the depth (the next task continues the same "visit").
 */
#include <linux/sched.h>
#include <linux/hardirq.h>
#include <linux/errno.h>
#include "internal.h"

static struct {
	struct lkl_mutex *lock;		/* protects everything below */
	lkl_thread_t owner;		/* 0 when the CPU is free */
	unsigned int count;
	unsigned int sleepers;		/* threads waiting in lkl_cpu_get */
	struct lkl_sem *sem;		/* where they wait */
	bool shutdown;			/* after halt: nobody gets in */
} cpu;

int lkl_cpu_init(void)
{
	cpu.lock = lkl_ops->mutex_alloc();
	cpu.sem = lkl_ops->sem_alloc(0);
	if (!cpu.lock || !cpu.sem)
		return -ENOMEM;
	return 0;
}

int lkl_cpu_get(void)
{
	lkl_thread_t self = lkl_ops->thread_self();

	lkl_ops->mutex_lock(cpu.lock);
	while (!cpu.shutdown && cpu.owner && cpu.owner != self) {
		cpu.sleepers++;
		lkl_ops->mutex_unlock(cpu.lock);
		lkl_ops->sem_down(cpu.sem);
		lkl_ops->mutex_lock(cpu.lock);
	}
	if (cpu.shutdown) {
		lkl_ops->mutex_unlock(cpu.lock);
		return -ENODEV;
	}
	cpu.owner = self;
	cpu.count++;
	lkl_ops->mutex_unlock(cpu.lock);
	return 0;
}

/* A context switch hands the CPU, with its nesting depth, to another thread. */
void lkl_cpu_set_owner(lkl_thread_t owner)
{
	lkl_ops->mutex_lock(cpu.lock);
	cpu.owner = owner;
	lkl_ops->mutex_unlock(cpu.lock);
}

/*
 * Called by lkl_trigger_irq on an arbitrary host thread. Returns 1 when the
 * caller now owns the CPU and should run the interrupt itself, 0 when the
 * interrupt was left pending for the current owner (who runs pending
 * interrupts before giving up the CPU, so none is lost), or -ENODEV.
 */
int lkl_cpu_claim_for_irq(int irq)
{
	lkl_thread_t self = lkl_ops->thread_self();
	int ret;

	lkl_ops->mutex_lock(cpu.lock);
	if (cpu.shutdown) {
		ret = -ENODEV;
	} else if (cpu.owner) {
		/* set under cpu.lock so lkl_cpu_put cannot miss it */
		lkl_set_irq_pending(irq);
		ret = 0;
	} else {
		cpu.owner = self;
		cpu.count++;
		ret = 1;
	}
	lkl_ops->mutex_unlock(cpu.lock);
	return ret;
}

void lkl_cpu_put(void)
{
	lkl_ops->mutex_lock(cpu.lock);
	for (;;) {
		while (lkl_irqs_pending() && !irqs_disabled()) {
			lkl_ops->mutex_unlock(cpu.lock);
			lkl_run_pending_irqs();
			lkl_ops->mutex_lock(cpu.lock);
		}
		if (!test_thread_flag(TIF_HOST_THREAD) || !lkl_other_task_runnable() ||
		    cpu.count != 1 || lkl_halting)
			break;
		/*
		 * Other tasks are runnable: hand the CPU to them. The host
		 * task sleeps until its thread calls in again.
		 */
		lkl_ops->mutex_unlock(cpu.lock);
		if (lkl_thread_sched_jb())
			return;
		lkl_ops->mutex_lock(cpu.lock);
	}

	if (--cpu.count > 0) {
		lkl_ops->mutex_unlock(cpu.lock);
		return;
	}
	cpu.owner = 0;
	if (cpu.sleepers) {
		cpu.sleepers--;
		lkl_ops->sem_up(cpu.sem);
	}
	lkl_ops->mutex_unlock(cpu.lock);
}

/*
 * Whether someone else waits for the CPU: a thread in lkl_cpu_get or an
 * interrupt left pending for the owner. An owner that loops (busy polling)
 * asks this to know when to give the CPU up. A hint, read without the lock.
 */
bool lkl_cpu_wanted(void)
{
	return READ_ONCE(cpu.sleepers) || lkl_irqs_pending();
}

/*
 * After halt, the CPU stays closed: entry points called late (e.g. by
 * threads still running while the process exits) fail with -ENODEV instead
 * of touching freed kernel memory. The lock and semaphore are kept for that.
 */
void lkl_cpu_shutdown(void)
{
	lkl_ops->mutex_lock(cpu.lock);
	cpu.shutdown = true;
	cpu.owner = 0;
	cpu.count = 0;
	while (cpu.sleepers) {
		cpu.sleepers--;
		lkl_ops->sem_up(cpu.sem);
	}
	lkl_ops->mutex_unlock(cpu.lock);
}
