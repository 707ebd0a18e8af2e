// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel's RAM: one host allocation of mem= bytes, flat, one zone.
 * The host should map it lazily so pages the kernel never touches cost
 * nothing.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/memblock.h>
#include <linux/mm.h>
#include <linux/oom.h>
#include <linux/string.h>
#include <net/sock.h>
#include <asm/page.h>
#include <asm/sections.h>
#include "internal.h"

#define DEFAULT_MEM_SIZE	(64UL << 20)
/* Below this the network stack cannot come up. */
#define MIN_MEM_SIZE		(16UL << 20)

unsigned long memory_start, memory_end;
void *empty_zero_page;

static void *ram;
static unsigned long mem_size = DEFAULT_MEM_SIZE;

/* Checked before boot, so a bad value is an error, not a panic. */
int __init lkl_mem_check_param(const char *val)
{
	char *end;
	unsigned long long size;

	if (!val)
		goto bad;
	size = memparse(val, &end);
	if (*end)
		goto bad;
	if (size < MIN_MEM_SIZE) {
		lkl_boot_error("lkl: mem=%s is too small, the minimum is %luM\n",
			       val, MIN_MEM_SIZE >> 20);
		return -ENOMEM;
	}
	return 0;
bad:
	lkl_boot_error("lkl: mem=%s is not a size (e.g. mem=64M)\n",
		       val ? val : "");
	return -EINVAL;
}

static int __init early_mem(char *p)
{
	mem_size = PAGE_ALIGN(memparse(p, &p));
	return 0;
}
early_param("mem", early_mem);

void __init bootmem_init(void)
{
	unsigned long max_zone_pfn[MAX_NR_ZONES] = { 0 };

	ram = lkl_ops->mem_alloc(mem_size + PAGE_SIZE);
	if (!ram)
		panic("lkl: cannot allocate %lu bytes of kernel memory",
		      mem_size);

	memory_start = PAGE_ALIGN((unsigned long)ram);
	memory_end = memory_start + mem_size;
	memblock_add(__pa(memory_start), mem_size);

	min_low_pfn = virt_to_pfn((void *)memory_start);
	max_low_pfn = virt_to_pfn((void *)memory_end);
	max_pfn = max_low_pfn;

	empty_zero_page = memblock_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!empty_zero_page)
		panic("lkl: no memory for the zero page");

	max_zone_pfn[ZONE_NORMAL] = max_pfn;
	free_area_init(max_zone_pfn);
}

void __init mem_init(void)
{
	memblock_free_all();
}

/* Init sections live in the host program's image, not in our RAM. */
void free_initmem(void)
{
}

void lkl_mem_cleanup(void)
{
	lkl_ops->mem_free(ram);
	ram = NULL;
}

/*
 * Only host tasks run here, and the OOM killer can choose none of them, so
 * it would panic ("System is deadlocked on memory") and take the program
 * down. Without it an allocation that finds no memory fails, and the program
 * gets ENOMEM or ENOBUFS from the call that needed it.
 */
static int __init lkl_disable_oom_killer(void)
{
	if (!oom_killer_disable(1))
		pr_warn("lkl: the OOM killer stays enabled\n");
	return 0;
}
late_initcall(lkl_disable_oom_killer);

/*
 * Every task that sends on a socket keeps a page-fragment cache of its own
 * (task_frag), 32 KiB pages by default, until it exits. Here each program
 * thread that calls in is a task, and at a library kernel's memory sizes a
 * server with a thread per connection pins it all that way (600 threads:
 * 19 of 32 MiB, and then not even the resets that would free sockets can
 * be received). Single pages, as net.core.high_order_alloc_disable=1 asks
 * (and =0 undoes), keep it to 4 KiB per thread.
 */
static int __init lkl_small_frag_pages(void)
{
	static_branch_enable(&net_high_order_alloc_disable_key);
	return 0;
}
late_initcall(lkl_small_frag_pages);
