// SPDX-License-Identifier: GPL-2.0-only
/*
 * Time: a clocksource and sched_clock reading the host's monotonic clock in
 * nanoseconds, and a one-shot clockevent on a host timer with nanosecond
 * resolution (fine-grained timers matter for TCP pacing).
 */
#include <linux/clockchips.h>
#include <linux/clocksource.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/sched/clock.h>
#include <linux/delay.h>
#include <linux/init.h>
#include "internal.h"

static unsigned long long boot_time_ns;
static struct lkl_timer *timer;
static int timer_irq;

unsigned long long sched_clock(void)
{
	if (!boot_time_ns)
		return 0;
	return lkl_ops->time_ns() - boot_time_ns;
}

static u64 clock_read(struct clocksource *cs)
{
	return lkl_ops->time_ns();
}

static struct clocksource clocksource = {
	.name	= "lkl",
	.rating	= 499,
	.read	= clock_read,
	.flags	= CLOCK_SOURCE_IS_CONTINUOUS,
	.mask	= CLOCKSOURCE_MASK(64),
};

static int clockevent_next_event(unsigned long ns,
				 struct clock_event_device *evt)
{
	return lkl_ops->timer_set_oneshot(timer, ns);
}

static struct clock_event_device clockevent = {
	.name			= "lkl",
	.features		= CLOCK_EVT_FEAT_ONESHOT,
	.set_next_event		= clockevent_next_event,
	.rating			= 499,
};

static irqreturn_t timer_irq_handler(int irq, void *dev_id)
{
	clockevent.event_handler(&clockevent);
	return IRQ_HANDLED;
}

/* Runs on the host's timer thread. */
static void timer_expired(void *arg)
{
	lkl_trigger_irq(timer_irq);
}

void __init time_init(void)
{
	int ret;

	boot_time_ns = lkl_ops->time_ns();

	timer_irq = lkl_get_free_irq("timer");
	if (timer_irq < 0)
		panic("lkl: no irq for the timer");
	ret = request_irq(timer_irq, timer_irq_handler, IRQF_TIMER, "timer",
			  NULL);
	if (ret)
		panic("lkl: cannot request the timer irq: %d", ret);

	timer = lkl_ops->timer_alloc(timer_expired, NULL);
	if (!timer)
		panic("lkl: cannot allocate the host timer");

	ret = clocksource_register_hz(&clocksource, NSEC_PER_SEC);
	if (ret)
		panic("lkl: cannot register the clocksource: %d", ret);

	clockevent.cpumask = cpumask_of(0);
	clockevents_config_and_register(&clockevent, NSEC_PER_SEC, 1,
					ULONG_MAX);

	/* Nothing to calibrate against: loops_per_jiffy is not used for delays. */
	lpj_fine = 1000000000UL / HZ;
}

void lkl_time_cleanup(void)
{
	lkl_ops->timer_free(timer);
	timer = NULL;
}

/* Busy waits measured on the host clock. */
void __ndelay(unsigned long nsecs)
{
	unsigned long long end = lkl_ops->time_ns() + nsecs;

	while (lkl_ops->time_ns() < end)
		cpu_relax();
}

void __udelay(unsigned long usecs)
{
	__ndelay(usecs * NSEC_PER_USEC);
}

void __const_udelay(unsigned long xloops)
{
	/* asm-generic/delay.h scales usecs by 0x10c7 (2**32 / 1000000) */
	__udelay(xloops / 0x10C7);
}

void __delay(unsigned long loops)
{
	__ndelay(loops);
}
