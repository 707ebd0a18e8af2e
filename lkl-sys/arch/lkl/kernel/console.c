// SPDX-License-Identifier: GPL-2.0-only
/* Kernel messages go to the host's print op. */
#include <linux/console.h>
#include <linux/init.h>
#include "internal.h"

static void console_write(struct console *con, const char *str,
			  unsigned int len)
{
	lkl_ops->print(str, len);
}

static struct console lkl_console = {
	.name	= "lkl",
	.write	= console_write,
	.flags	= CON_PRINTBUFFER | CON_ENABLED,
	.index	= -1,
};

static int __init lkl_console_init(void)
{
	register_console(&lkl_console);
	return 0;
}
console_initcall(lkl_console_init);
