// SPDX-License-Identifier: GPL-2.0-only
/*
 * Whether a task other than current wants the CPU.
 *
 * Since 6.12 the fair scheduler leaves a task that went to sleep queued
 * until it would be picked ("delayed dequeue"), so rq->nr_running also
 * counts tasks that do not want to run. lkl_cpu_put() asks this at the end
 * of every system call; counting those tasks would bounce the CPU through
 * the idle task each time (measured: getpid from ~0.1 to ~5 us). The run
 * queue is private to the scheduler, hence its internal header.
 */
#include "../../../kernel/sched/sched.h"
#include "internal.h"

bool lkl_other_task_runnable(void)
{
	struct rq *rq = this_rq();

	return rq->nr_running - rq->cfs.h_nr_delayed > 1;
}
