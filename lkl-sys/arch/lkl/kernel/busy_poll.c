// SPDX-License-Identifier: GPL-2.0-only
/*
 * Busy polling for host threads about to wait.
 *
 * The host never sleeps inside lkl: a thread blocked in recv, accept or
 * epoll_wait sleeps in the host until a notifier (notify.c) wakes it. The
 * packet that makes it ready then crosses threads twice: the host wakes the
 * backend's thread, which raises the device's irq; the softirq makes the
 * socket ready and the notifier wakes the waiter. Linux has the cure, busy
 * polling: before it sleeps, the waiting thread polls the device's NAPI
 * itself for a short time (napi_busy_loop). lkl_busy_wait does that for the
 * host, with Linux's own knobs: a socket's SO_BUSY_POLL (net.core.busy_read
 * by default), net.core.busy_poll for anything else (an epoll instance).
 *
 * Readiness is learnt the way a sleeper learns it, from the file's poll
 * queue: an entry on it sets a flag the loop checks, and the file is polled
 * again only when the flag says something changed.
 *
 * The loop holds the one CPU. It ends when another thread wants it (the
 * waiter then sleeps as it would without busy polling), and steps out for
 * pending interrupts, which run when the CPU is given up (the host calls
 * again). Between polls it yields the host CPU: with one host CPU the peer
 * that sends the awaited packet may be runnable on it.
 */
#include <linux/file.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/syscalls.h>
#include <linux/wait.h>
#include <net/busy_poll.h>
#include <net/sock.h>
#include "internal.h"

struct busy_wait {
	poll_table pt;
	wait_queue_entry_t wait;
	wait_queue_head_t *whead;
	__poll_t events;
	unsigned long end;	/* in busy_loop_current_time() units */
	bool woken;
	long ret;
};

static int busy_wait_wake(wait_queue_entry_t *wait, unsigned int mode,
			  int sync, void *key)
{
	struct busy_wait *w = container_of(wait, struct busy_wait, wait);

	if (!key || (key_to_poll(key) & w->events))
		WRITE_ONCE(w->woken, true);
	return 0;
}

/* Sockets and epoll instances poll on one queue; others are not waited for. */
static void busy_wait_queue(struct file *file, wait_queue_head_t *whead,
			    poll_table *pt)
{
	struct busy_wait *w = container_of(pt, struct busy_wait, pt);

	if (w->whead)
		return;
	w->whead = whead;
	init_waitqueue_func_entry(&w->wait, busy_wait_wake);
	add_wait_queue(whead, &w->wait);
}

static bool busy_wait_end(void *arg, unsigned long start_time)
{
	struct busy_wait *w = arg;

	if (READ_ONCE(w->woken)) {
		w->ret = -EAGAIN;	/* poll the file, outside the loop */
		return true;
	}
	if (lkl_cpu_wanted()) {
		/* a thread: let it in and sleep; an irq: run it, come back */
		w->ret = lkl_irqs_pending() ? -EAGAIN : 0;
		return true;
	}
	if (time_after(busy_loop_current_time(), w->end)) {
		w->ret = 0;
		return true;
	}
	lkl_ops->thread_yield();
	return false;
}

/*
 * Polls the network device until fd is ready for events, for at most the
 * busy-poll time of fd less spent_us (what earlier calls of this wait
 * spent). Returns the ready events; 0 when the time is up, busy polling is
 * off or another thread wants the CPU: the caller should sleep; -EAGAIN
 * when it should call again (an interrupt needed the CPU, or the file may
 * have become ready but did not for these events).
 */
SYSCALL_DEFINE3(lkl_busy_wait, int, fd, unsigned int, events,
		unsigned int, spent_us)
{
	struct busy_wait w = { .events = (__force __poll_t)events, .ret = 0 };
	unsigned int napi_id = 0, usecs = READ_ONCE(sysctl_net_busy_poll);
	u16 budget = BUSY_POLL_BUDGET;
	bool prefer = false;
	struct socket *sock;
	struct file *file;
	__poll_t mask;

	file = fget(fd);
	if (!file)
		return -EBADF;
	sock = sock_from_file(file);
	if (sock && sock->sk) {
		struct sock *sk = sock->sk;

		usecs = READ_ONCE(sk->sk_ll_usec);
		napi_id = READ_ONCE(sk->sk_napi_id);
		prefer = READ_ONCE(sk->sk_prefer_busy_poll);
		budget = READ_ONCE(sk->sk_busy_poll_budget) ?: budget;
	}
	/* a listener, or a socket that has not received yet */
	if (napi_id < MIN_NAPI_ID)
		napi_id = lkl_netdev_napi_id();
	if (usecs <= spent_us || napi_id < MIN_NAPI_ID || !file_can_poll(file))
		goto out;

	init_poll_funcptr(&w.pt, busy_wait_queue);
	w.pt._key = w.events;
	mask = vfs_poll(file, &w.pt) & w.events;
	if (mask) {
		w.ret = (__force long)mask;
	} else if (w.whead) {
		w.end = busy_loop_current_time() + usecs - spent_us;
		napi_busy_loop(napi_id, busy_wait_end, &w, prefer, budget);
	}
	if (w.whead)
		remove_wait_queue(w.whead, &w.wait);
	if (w.ret == -EAGAIN && w.woken) {
		init_poll_funcptr(&w.pt, NULL);
		w.pt._key = w.events;
		mask = vfs_poll(file, &w.pt) & w.events;
		if (mask)
			w.ret = (__force long)mask;
	}
out:
	if (!w.ret)
		lkl_netdev_busy_end();
	fput(file);
	return w.ret;
}
