// SPDX-License-Identifier: GPL-2.0-only
/*
 * Interrupts of the virtual CPU.
 *
 * Host threads (timers, network devices) raise interrupts with
 * lkl_trigger_irq(). When the CPU is free the raising thread takes it and
 * runs the handler itself; otherwise the interrupt is marked pending and the
 * CPU owner runs it when it re-enables interrupts or gives the CPU up.
 */
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/hardirq.h>
#include <linux/irqchip.h>
#include <linux/seq_file.h>
#include <asm/irq_regs.h>
#include <asm/irqflags.h>
#include "internal.h"

static unsigned long irq_flags = ARCH_IRQ_DISABLED;

/* Set from any host thread, cleared by the CPU owner: host atomics only. */
#define PENDING_WORDS	BITS_TO_LONGS(NR_IRQS)
static unsigned long pending[PENDING_WORDS];

/* irq numbers handed out to host devices; 0 is never used */
static unsigned long irqs_used[PENDING_WORDS];

void lkl_set_irq_pending(int irq)
{
	__atomic_fetch_or(&pending[irq / BITS_PER_LONG],
			  1UL << (irq % BITS_PER_LONG), __ATOMIC_SEQ_CST);
}

bool lkl_irqs_pending(void)
{
	int i;

	for (i = 0; i < PENDING_WORDS; i++)
		if (__atomic_load_n(&pending[i], __ATOMIC_SEQ_CST))
			return true;
	return false;
}

/*
 * The registers an interrupt "interrupted". There are none, but the tick
 * only does its periodic work (timer wheel, scheduler tick, RCU) when
 * get_irq_regs() is set, so it must point somewhere: kernel mode, pc 0.
 */
static struct pt_regs irq_regs;

static void run_irq(int irq)
{
	struct pt_regs *old_regs;
	unsigned long flags;

	/* handlers run with interrupts off, softirqs follow in irq_exit */
	local_irq_save(flags);
	old_regs = set_irq_regs(&irq_regs);
	irq_enter();
	generic_handle_irq(irq);
	irq_exit();
	set_irq_regs(old_regs);
	local_irq_restore(flags);
}

/* Drain until empty: a handler may raise further interrupts. */
void lkl_run_pending_irqs(void)
{
	unsigned long word;
	int i, bit;

	while (lkl_irqs_pending()) {
		for (i = 0; i < PENDING_WORDS; i++) {
			word = __atomic_exchange_n(&pending[i], 0,
						   __ATOMIC_SEQ_CST);
			while (word) {
				bit = __ffs(word);
				word &= ~(1UL << bit);
				run_irq(i * BITS_PER_LONG + bit);
			}
		}
	}
}

unsigned long arch_local_save_flags(void)
{
	return irq_flags;
}

void arch_local_irq_restore(unsigned long flags)
{
	if (flags == ARCH_IRQ_ENABLED && irq_flags == ARCH_IRQ_DISABLED &&
	    !in_interrupt()) {
		irq_flags = ARCH_IRQ_DISABLED;
		lkl_run_pending_irqs();
	}
	irq_flags = flags;
}

int lkl_trigger_irq(int irq)
{
	int ret;

	if (irq <= 0 || irq >= NR_IRQS)
		return -EINVAL;

	ret = lkl_cpu_claim_for_irq(irq);
	if (ret <= 0)
		return ret;

	/*
	 * We own the CPU now. Interrupts can still be disabled: the last
	 * owner may have given the CPU up inside an irqs-off section (boot).
	 */
	if (irqs_disabled())
		lkl_set_irq_pending(irq);
	else
		run_irq(irq);
	lkl_cpu_put();
	return 0;
}

/* Host threads call these without owning the CPU: host atomics only. */
int lkl_get_free_irq(const char *user)
{
	unsigned long bit, old;
	int irq;

	for (irq = 1; irq < NR_IRQS; irq++) {
		bit = 1UL << (irq % BITS_PER_LONG);
		old = __atomic_fetch_or(&irqs_used[irq / BITS_PER_LONG], bit,
					__ATOMIC_SEQ_CST);
		if (!(old & bit))
			return irq;
	}
	return -EBUSY;
}

void lkl_put_irq(int irq, const char *user)
{
	if (irq <= 0 || irq >= NR_IRQS)
		return;
	__atomic_fetch_and(&irqs_used[irq / BITS_PER_LONG],
			   ~(1UL << (irq % BITS_PER_LONG)), __ATOMIC_SEQ_CST);
}

static void lkl_irq_noop(struct irq_data *data)
{
}

static struct irq_chip lkl_irq_chip = {
	.name		= "lkl",
	.irq_mask	= lkl_irq_noop,
	.irq_unmask	= lkl_irq_noop,
};

void __init init_IRQ(void)
{
	int i;

	for (i = 1; i < NR_IRQS; i++)
		irq_set_chip_and_handler(i, &lkl_irq_chip, handle_simple_irq);
}
