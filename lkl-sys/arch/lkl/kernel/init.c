// SPDX-License-Identifier: GPL-2.0-only
/*
 * The end of boot.
 *
 * After the initcalls, init (pid 1) execs "/init". lkl places an empty
 * /init in the root file system and registers a binary format that accepts
 * exactly that file without loading anything. The exec succeeds, init's
 * function returns 0 as if entering user space, and the thread bootstrap
 * (threads.c) turns init into host0 instead. No generic code is patched.
 */
#include <linux/binfmts.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include "internal.h"

#define LKL_INIT	"/init"

static int load_lkl_init(struct linux_binprm *bprm)
{
	if (strcmp(bprm->filename, LKL_INIT))
		return -ENOEXEC;
	return 0;
}

static struct linux_binfmt lkl_init_format = {
	.load_binary	= load_lkl_init,
};

static int __init lkl_init_format_register(void)
{
	register_binfmt(&lkl_init_format);
	return 0;
}
core_initcall(lkl_init_format_register);

static int __init lkl_init_file_create(void)
{
	struct file *file;

	file = filp_open(LKL_INIT, O_CREAT | O_WRONLY | O_EXCL, 0700);
	if (IS_ERR(file)) {
		pr_err("lkl: cannot create %s: %ld\n", LKL_INIT,
		       PTR_ERR(file));
		return PTR_ERR(file);
	}
	fput(file);
	/* init never returns to user mode, where the final fput would run */
	task_work_run();
	return 0;
}
late_initcall(lkl_init_file_create);
