/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * The contract between the lkl kernel port and its host.
 *
 * The kernel runs inside an ordinary process. Everything it needs from the
 * outside world (threads, blocking primitives, time, memory, console) comes
 * through one table of function pointers handed to lkl_start_kernel(). The
 * host implements it (in this project: Rust, see the lkl crate).
 *
 * Threading model: exactly one host thread runs kernel code at any time (the
 * "CPU owner"). Every kernel task that needs its own stack is backed by a
 * host thread created with thread_create(); a task that is not running is
 * parked in sem_down() on its own semaphore. Host threads that make system
 * calls get a kernel task of their own, found through tls_get().
 */
#ifndef _ASM_UAPI_LKL_HOST_OPS_H
#define _ASM_UAPI_LKL_HOST_OPS_H

struct lkl_sem;
struct lkl_mutex;
struct lkl_tls_key;
struct lkl_timer;

/* An opaque host thread handle; 0 means "no thread". */
typedef unsigned long lkl_thread_t;

struct lkl_host_ops {
	/* Console output; str is not NUL terminated. */
	void (*print)(const char *str, int len);
	/* Called once on a kernel panic, after the message was printed. */
	void (*panic)(void);

	/* Counting semaphores. sem_alloc returns NULL on failure. */
	struct lkl_sem *(*sem_alloc)(int count);
	void (*sem_free)(struct lkl_sem *sem);
	void (*sem_up)(struct lkl_sem *sem);
	void (*sem_down)(struct lkl_sem *sem);

	/* Non-recursive mutexes. mutex_alloc returns NULL on failure. */
	struct lkl_mutex *(*mutex_alloc)(void);
	void (*mutex_free)(struct lkl_mutex *mutex);
	void (*mutex_lock)(struct lkl_mutex *mutex);
	void (*mutex_unlock)(struct lkl_mutex *mutex);

	/*
	 * Start a detached host thread running fn(arg); returns 0 on failure.
	 * The thread ends when fn returns (the kernel never asks a thread to
	 * exit any other way). The host keeps track of the threads it started
	 * so it can wait for all of them after lkl_halt().
	 */
	lkl_thread_t (*thread_create)(void (*fn)(void *), void *arg);
	/* The calling thread's handle; distinct live threads differ. */
	lkl_thread_t (*thread_self)(void);
	/*
	 * Offer the host CPU to other runnable host threads (sched_yield): a
	 * thread polling for packets must not keep the peer that sends them
	 * off a shared CPU.
	 */
	void (*thread_yield)(void);

	/*
	 * Thread-local storage. The destructor runs when a thread that set a
	 * non-NULL value exits. tls_alloc returns NULL on failure; tls_set
	 * returns 0 or a negative error. After tls_free no destructor runs.
	 */
	struct lkl_tls_key *(*tls_alloc)(void (*destructor)(void *));
	void (*tls_free)(struct lkl_tls_key *key);
	int (*tls_set)(struct lkl_tls_key *key, void *data);
	void *(*tls_get)(struct lkl_tls_key *key);

	/* Memory; mem_alloc returns NULL on failure. */
	void *(*mem_alloc)(unsigned long size);
	void (*mem_free)(void *addr);

	/* Monotonic host time in nanoseconds (CLOCK_MONOTONIC). */
	unsigned long long (*time_ns)(void);

	/*
	 * One-shot timers. fn(arg) runs on a host thread (never the thread
	 * that armed the timer while it holds the CPU) delta_ns after
	 * timer_set_oneshot; arming again replaces the pending expiry; a
	 * delta of 0 fires as soon as possible. timer_free cancels the timer
	 * and returns only when fn is no longer running and never will be.
	 * timer_alloc returns NULL on failure.
	 */
	struct lkl_timer *(*timer_alloc)(void (*fn)(void *), void *arg);
	int (*timer_set_oneshot)(struct lkl_timer *timer,
				 unsigned long long delta_ns);
	void (*timer_free)(struct lkl_timer *timer);

	/*
	 * Copy n bytes between kernel memory and memory a host program handed
	 * in (the "user" side of either direction). A pointer the program got
	 * wrong must not crash the process: return how many bytes could not
	 * be copied (0 on success), and the kernel reports EFAULT.
	 */
	unsigned long (*copy_user)(void *dst, const void *src, unsigned long n);

	/*
	 * The host's memcpy, memmove and memset, tuned for the machine: the
	 * kernel's portable ones go a byte at a time, and copying packets is
	 * much of what the network stack does.
	 */
	void *(*memcpy)(void *dst, const void *src, unsigned long n);
	void *(*memmove)(void *dst, const void *src, unsigned long n);
	void *(*memset)(void *s, int c, unsigned long n);
};

/* The layout of struct iovec on the host. */
struct lkl_iovec {
	void *iov_base;
	unsigned long iov_len;
};

struct lkl_netdev;

typedef int (*lkl_netdev_deliver_t)(void *ctx, const void *vnet_hdr,
				    const void *packet, unsigned int len);

/*
 * A network device backed by the host (e.g. a packet socket). The kernel
 * sees an L3 point-to-point interface without link-layer header or ARP:
 * packets are bare IPv4/IPv6. Every packet is accompanied by a struct
 * virtio_net_hdr (linux/virtio_net.h) carrying offload metadata.
 */
struct lkl_netdev_ops {
	/*
	 * Send n packets. Packet i is the next cnt[i] iovecs of iov: its
	 * virtio_net_hdr, then its pieces in order (the IP header starts the
	 * first). With LKL_NETDEV_TSO a packet may be a TCP GSO packet of up
	 * to 64 KiB and its checksum may be left partial, as its header says.
	 * Called with the CPU held; must not block for long. Returns how many
	 * of the packets the host took (the others count as dropped).
	 */
	int (*tx)(struct lkl_netdev *nd, const struct lkl_iovec *iov,
		  const int *cnt, int n);
	/*
	 * Hand waiting packets to the kernel without blocking, at most budget
	 * of them, each with one call of deliver: vnet_hdr points to its
	 * virtio_net_hdr, packet to its len bytes (the IP header first, up to
	 * 65535 bytes). Both need only stay valid during the call, which
	 * copies them. deliver returns 0 when the packet was taken (also when
	 * the kernel dropped it as malformed), LKL_NETDEV_FOREIGN when the
	 * kernel did not take it because it belongs to another kernel (see
	 * own_only; the host may hand it to that one), and -ENOMEM when the
	 * kernel has no memory for it now: rx then stops and keeps that packet
	 * for a later call. Returns the number of packets taken or foreign, or
	 * a negative errno when the host failed.
	 */
	int (*rx)(struct lkl_netdev *nd, int budget, lkl_netdev_deliver_t deliver,
		  void *ctx);
	/*
	 * rx found nothing more and the kernel stopped polling: raise irq
	 * (lkl_trigger_irq) once a packet is waiting. Devices start armed.
	 */
	void (*rx_arm)(struct lkl_netdev *nd);
};

struct lkl_netdev {
	const struct lkl_netdev_ops *ops;
	/* largest packet rx can deliver and tx may be given (but see TSO) */
	unsigned int mtu;
	/* LKL_NETDEV_* offloads the host takes */
	unsigned int offloads;
	/* set by lkl_netdev_add: the interrupt that announces rx packets */
	int irq;
	/*
	 * Optional, read at every rx packet: while the host sets it non-zero,
	 * TCP segments of connections the kernel does not have are not taken
	 * but given back unseen (deliver returns LKL_NETDEV_FOREIGN), first
	 * segments of new ones (SYN without ACK) excepted. For kernels that
	 * share out the connections of the same listeners (one per process of
	 * a pre-fork server): a kernel must not answer the others' segments
	 * with resets, and its host can pass them on to the one that has them.
	 */
	const int *own_only;
};

/* deliver's answer for a segment of a connection another kernel has */
#define LKL_NETDEV_FOREIGN	1

/*
 * The host segments TCP GSO packets and finishes partial checksums itself
 * (e.g. a packet socket with PACKET_VNET_HDR): tx then gets whole 64 KiB
 * TCP packets instead of MTU-sized segments made in software.
 */
#define LKL_NETDEV_TSO	1

/*
 * Entry points; the only global symbols of the kernel library.
 *
 * lkl_start_kernel boots the kernel with the given command line (e.g.
 * "mem=32M loglevel=4") and returns 0 once it is ready for system calls, or
 * a negative errno (-EINVAL for a bad command line, -ENOMEM when the memory
 * cannot be had or is too small). It can be called once per process.
 *
 * lkl_syscall runs system call nr (asm-generic numbering, see
 * asm/unistd.h) with up to six arguments from params[] on behalf of the
 * calling host thread, and returns its result (negative errno on error).
 *
 * lkl_halt shuts the kernel down, ends every thread it started and frees
 * its memory. No other entry point may be called afterwards.
 *
 * lkl_netdev_add registers a host network device (down, no address) under
 * name ("eth%d" when NULL) and returns its ifindex or a negative errno. nd
 * must stay valid until lkl_halt.
 *
 * lkl_trigger_irq raises irq from any host thread. lkl_get_free_irq
 * reserves an irq number for a host device (negative errno on failure);
 * lkl_put_irq returns it.
 */
int lkl_netdev_add(struct lkl_netdev *nd, const char *name);
int lkl_start_kernel(const struct lkl_host_ops *ops, const char *cmdline);
long lkl_syscall(long nr, long *params);
long lkl_halt(void);
int lkl_trigger_irq(int irq);
int lkl_get_free_irq(const char *user);
void lkl_put_irq(int irq, const char *user);

#endif /* _ASM_UAPI_LKL_HOST_OPS_H */
