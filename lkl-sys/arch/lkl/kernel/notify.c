// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host notifiers: a host function called whenever an lkl file's poll wait
 * queue is woken.
 *
 * A host program waits for host fds with the host kernel, and cannot also
 * sleep inside lkl. A notifier lets one host wait cover both: it is attached
 * to an lkl file (typically an epoll instance gathering the lkl fds of
 * interest) and calls back into the host, e.g. to signal a host eventfd, when
 * that file may have become ready. It is a hint, not a readiness report: the
 * host re-polls the lkl file to learn what is ready.
 *
 * The callback runs in whatever context woke the queue (a system call, the
 * softirq of a received packet) with the queue's lock held; it must not block
 * or call back into lkl.
 */
#include <linux/file.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/syscalls.h>
#include <linux/wait.h>

typedef void (*notify_fn_t)(void *arg);

struct lkl_notifier {
	poll_table pt;
	wait_queue_entry_t wait;
	wait_queue_head_t *whead;
	struct file *file;
	notify_fn_t fn;
	void *arg;
};

static int notifier_wake(wait_queue_entry_t *wait, unsigned int mode,
			 int sync, void *key)
{
	struct lkl_notifier *n = container_of(wait, struct lkl_notifier, wait);

	n->fn(n->arg);
	return 0;
}

/*
 * Sockets, epoll, eventfd and pipes all poll on a single queue; a file that
 * offers more than one is refused rather than watched half.
 */
static void notifier_queue(struct file *file, wait_queue_head_t *whead,
			   poll_table *pt)
{
	struct lkl_notifier *n = container_of(pt, struct lkl_notifier, pt);

	if (n->whead) {
		n->fn = NULL;
		return;
	}
	n->whead = whead;
	init_waitqueue_func_entry(&n->wait, notifier_wake);
	add_wait_queue(whead, &n->wait);
}

/*
 * Attaches fn(arg) to fd's file; the returned handle keeps the file alive
 * until it is given to lkl_notify_del. Only the host calls these, with the
 * handles it was given.
 */
SYSCALL_DEFINE3(lkl_notify_add, int, fd, notify_fn_t, fn, void *, arg)
{
	struct lkl_notifier *n;
	struct file *file;

	if (!fn)
		return -EINVAL;
	file = fget(fd);
	if (!file)
		return -EBADF;
	if (!file_can_poll(file)) {
		fput(file);
		return -EPERM;
	}
	n = kzalloc(sizeof(*n), GFP_KERNEL);
	if (!n) {
		fput(file);
		return -ENOMEM;
	}
	n->file = file;
	n->fn = fn;
	n->arg = arg;
	init_poll_funcptr(&n->pt, notifier_queue);
	vfs_poll(file, &n->pt);
	if (!n->whead || !n->fn) {
		if (n->whead)
			remove_wait_queue(n->whead, &n->wait);
		fput(file);
		kfree(n);
		return -EPERM;
	}
	return (long)n;
}

SYSCALL_DEFINE1(lkl_notify_del, unsigned long, handle)
{
	struct lkl_notifier *n = (struct lkl_notifier *)handle;

	remove_wait_queue(n->whead, &n->wait);
	fput(n->file);
	kfree(n);
	return 0;
}
