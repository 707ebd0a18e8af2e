/* Programs that misuse sockets, run under the preload by
 * tests/misbehaving_programs_neither_hang_nor_crash.rs (and on the host kernel for comparison).
 * `misbehaving MODE`; every socket is on loopback (in LKL under the preload: a listener lives
 * there, and a connection to it from the same program goes through LKL). One line per check
 * on stdout; exit status 0 when the program got to its end. A watchdog alarm (SIGALRM, default
 * action) ends any mode that hangs, which the test reports as a hang. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *ename(int e)
{
	switch (e) {
	case 0: return "0";
	case EBADF: return "EBADF";
	case EINTR: return "EINTR";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EPIPE: return "EPIPE";
	case ECONNRESET: return "ECONNRESET";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case ENOTCONN: return "ENOTCONN";
	case EAGAIN: return "EAGAIN";
	case ENOTSOCK: return "ENOTSOCK";
	case ECONNABORTED: return "ECONNABORTED";
	case ESHUTDOWN: return "ESHUTDOWN";
	case ENOBUFS: return "ENOBUFS";
	case ENOMEM: return "ENOMEM";
	default: return strerror(e);
	}
}

#define CHECK(x) do { if (!(x)) { printf("FAILED: %s (line %d, errno %s)\n", #x, __LINE__, ename(errno)); fflush(stdout); exit(1); } } while (0)

static int listener(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(listen(s, 16) == 0);
	socklen_t len = sizeof a;
	CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	*port = ntohs(a.sin_port);
	return s;
}

/* A connected pair through the loopback listener `l` on `port`: *c the client, *s the server. */
static void pair(int l, int port, int *c, int *s)
{
	*c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(*c >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(connect(*c, (struct sockaddr *)&a, sizeof a) == 0);
	*s = accept(l, NULL, NULL);
	CHECK(*s >= 0);
}

/* ---- a thread blocked in a call, and another closing (or shutting down) its fd ---- */

enum op { OP_ACCEPT, OP_RECV, OP_EPOLL, OP_SEND, OP_POLL };
struct blocked {
	enum op op;
	int fd;
	int ep;
	long rc;
	int err;
	double took;
	volatile int done;
};

static void *block_in(void *arg)
{
	struct blocked *b = arg;
	double t0 = now();
	errno = 0;
	switch (b->op) {
	case OP_ACCEPT:
		b->rc = accept(b->fd, NULL, NULL);
		break;
	case OP_RECV: {
		char buf[64];
		b->rc = recv(b->fd, buf, sizeof buf, 0);
		break;
	}
	case OP_EPOLL: {
		struct epoll_event ev;
		b->rc = epoll_wait(b->ep, &ev, 1, 3000);
		break;
	}
	case OP_POLL: {
		struct pollfd p = { .fd = b->fd, .events = POLLIN };
		b->rc = poll(&p, 1, 3000);
		break;
	}
	case OP_SEND: {
		static char big[1 << 20];
		long total = 0;
		for (;;) {
			long n = send(b->fd, big, sizeof big, MSG_NOSIGNAL);
			if (n < 0)
				break;
			total += n;
		}
		b->rc = -1;
		break;
	}
	}
	b->err = b->rc < 0 ? errno : 0;
	b->took = now() - t0;
	b->done = 1;
	return NULL;
}

/* Runs `op` on a thread, then after 300 ms `how` (close or shutdown) the fd from this one;
 * the call must return within 5 s. */
static void blocked_then(const char *name, enum op op, int fd, int ep, int use_shutdown)
{
	struct blocked b = { .op = op, .fd = fd, .ep = ep };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, block_in, &b) == 0);
	usleep(300000);
	CHECK(!b.done);
	double t0 = now();
	int rc = use_shutdown ? shutdown(fd, SHUT_RDWR) : close(fd);
	int cerr = errno;
	while (!b.done && now() - t0 < 5)
		usleep(1000);
	if (!b.done) {
		printf("%s: HANG (still blocked 5 s after %s)\n", name, use_shutdown ? "shutdown" : "close");
		fflush(stdout);
		_exit(3);
	}
	pthread_join(t, NULL);
	printf("%s: %s -> %d; blocked call returned %ld %s after %.1f s (%.2f s after it)\n", name,
	       use_shutdown ? "shutdown" : "close", rc < 0 ? -cerr : rc, b.rc, ename(b.err), b.took,
	       now() - t0);
}

static int close_while_blocked(void)
{
	int port, c, s;
	int l = listener(&port);
	blocked_then("accept, close", OP_ACCEPT, l, -1, 0);

	l = listener(&port);
	pair(l, port, &c, &s);
	blocked_then("recv, close", OP_RECV, s, -1, 0);
	close(c);

	pair(l, port, &c, &s);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
	blocked_then("epoll_wait, close", OP_EPOLL, s, ep, 0);
	close(ep);
	close(c);

	pair(l, port, &c, &s);
	blocked_then("poll, close", OP_POLL, s, -1, 0);
	close(c);

	pair(l, port, &c, &s);
	/* The receiver never reads: the sender fills both buffers and blocks. */
	blocked_then("send, shutdown", OP_SEND, c, -1, 1);
	close(c);
	close(s);

	pair(l, port, &c, &s);
	blocked_then("send, close", OP_SEND, c, -1, 0);
	close(s);

	/* After all this the stack still works. */
	pair(l, port, &c, &s);
	CHECK(send(c, "ok", 2, 0) == 2);
	char buf[4];
	CHECK(recv(s, buf, sizeof buf, 0) == 2);
	printf("fresh pair afterwards: ok\n");
	return 0;
}

/* ---- a signal storm at a thread blocked in recv ---- */

static volatile long signals_seen;
static void on_usr1(int sig)
{
	(void)sig;
	signals_seen++;
}

struct storm {
	int fd;
	long eintr;
	long rc;
	char buf[16];
	volatile int done;
};

static void *storm_reader(void *arg)
{
	struct storm *st = arg;
	long got = 0;
	while (got < (long)sizeof st->buf) {
		long n = recv(st->fd, st->buf + got, sizeof st->buf - got, MSG_WAITALL);
		if (n < 0 && errno == EINTR) {
			st->eintr++;
			continue;
		}
		if (n <= 0)
			break;
		got += n;
	}
	st->rc = got;
	st->done = 1;
	return NULL;
}

static int signal_storm(int restart)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	int port, c, s;
	int l = listener(&port);
	pair(l, port, &c, &s);
	struct storm st = { .fd = s };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, storm_reader, &st) == 0);
	usleep(100000);
	double t0 = now();
	long sent = 0;
	while (now() - t0 < 2.0) {
		for (int i = 0; i < 100; i++) {
			pthread_kill(t, SIGUSR1);
			sent++;
		}
		/* Part of the data in the middle of the storm (MSG_WAITALL must keep it). */
		if (sent == 5000)
			CHECK(send(c, "0123456", 7, 0) == 7);
	}
	CHECK(!st.done);
	CHECK(send(c, "89abcdef", 9, 0) == 9);
	double t1 = now();
	while (!st.done && now() - t1 < 5)
		usleep(1000);
	if (!st.done) {
		printf("signal storm (%s): HANG after the data arrived\n", restart ? "SA_RESTART" : "no SA_RESTART");
		fflush(stdout);
		_exit(3);
	}
	pthread_join(t, NULL);
	int intact = st.rc == 16 && memcmp(st.buf, "012345689abcdef", 16) == 0;
	printf("signal storm (%s): %ld signals sent, %ld handled, recv -> %ld, data %s, %s\n",
	       restart ? "SA_RESTART" : "no SA_RESTART", sent, signals_seen, st.rc,
	       intact ? "intact" : "CORRUPT", st.eintr > 0 ? "EINTR seen" : "no EINTR");
	fprintf(stderr, "eintr=%ld\n", st.eintr);
	return intact ? 0 : 1;
}

/* ---- exit while other threads are inside LKL calls ---- */

static void *sit_in_accept(void *arg)
{
	accept(*(int *)arg, NULL, NULL);
	return NULL;
}
static void *sit_in_recv(void *arg)
{
	char b[8];
	for (;;)
		recv(*(int *)arg, b, sizeof b, 0);
	return NULL;
}
static void *sit_in_epoll(void *arg)
{
	struct epoll_event ev;
	for (;;)
		epoll_wait(*(int *)arg, &ev, 1, -1);
	return NULL;
}
static void *sit_in_send(void *arg)
{
	static char big[1 << 20];
	for (;;)
		send(*(int *)arg, big, sizeof big, MSG_NOSIGNAL);
	return NULL;
}
static void *busy_calls(void *arg)
{
	int port = *(int *)arg;
	for (;;) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		connect(c, (struct sockaddr *)&a, sizeof a);
		int v = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
		close(c);
	}
	return NULL;
}

static int l_g, s_g, c_g, ep_g, port_g;
static void *exit_from_thread(void *arg)
{
	(void)arg;
	usleep(300000);
	printf("exiting from a thread\n");
	fflush(stdout);
	exit(0);
}

static int exit_while_busy(const char *how)
{
	l_g = listener(&port_g);
	pair(l_g, port_g, &c_g, &s_g);
	int c2, s2;
	pair(l_g, port_g, &c2, &s2);
	ep_g = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = s_g };
	CHECK(epoll_ctl(ep_g, EPOLL_CTL_ADD, s_g, &ev) == 0);
	static int l2;
	int p2;
	l2 = listener(&p2);
	static int c2s;
	c2s = c2;
	pthread_t t;
	pthread_create(&t, NULL, sit_in_accept, &l2);
	pthread_create(&t, NULL, sit_in_recv, &s_g);
	pthread_create(&t, NULL, sit_in_epoll, &ep_g);
	pthread_create(&t, NULL, sit_in_send, &c2s);
	pthread_create(&t, NULL, busy_calls, &port_g);
	pthread_create(&t, NULL, busy_calls, &port_g);
	printf("ready\n");
	fflush(stdout);
	usleep(500000);
	if (!strcmp(how, "exit")) {
		printf("calling exit\n");
		fflush(stdout);
		exit(0);
	}
	if (!strcmp(how, "thread")) {
		int p3;
		int l3 = listener(&p3);
		pthread_create(&t, NULL, exit_from_thread, NULL);
		accept(l3, NULL, NULL); /* blocked here while the thread exits */
		return 5;
	}
	printf("returning from main\n");
	fflush(stdout);
	return 0;
}

/* ---- leaking sockets up to RLIMIT_NOFILE ---- */

static int leak(void)
{
	struct rlimit rl = { 128, 128 };
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	int port;
	int l = listener(&port);
	int fds[200], n = 0, err = 0;
	for (;;) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0) {
			err = errno;
			break;
		}
		if (n < 200)
			fds[n] = s;
		n++;
		if (n > 1000)
			break;
	}
	printf("leak: socket failed after %s with %s\n", n > 100 ? ">100" : "<=100", ename(err));
	/* Accepting and connecting at the limit fail cleanly too. */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	printf("leak: at the limit socket -> %s\n", c < 0 ? ename(errno) : "ok");
	for (int i = 0; i < 10; i++)
		close(fds[i]);
	int c2, s2;
	pair(l, port, &c2, &s2);
	CHECK(send(c2, "x", 1, 0) == 1);
	char b;
	CHECK(recv(s2, &b, 1, 0) == 1);
	printf("leak: after closing 10, a connection works\n");
	for (int i = 10; i < n && i < 200; i++)
		close(fds[i]);
	int more = 0;
	for (int i = 0; i < 50; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s >= 0)
			more++;
	}
	printf("leak: after closing all, 50 more sockets: %d\n", more);
	return 0;
}

/* ---- bad pointers ---- */

static void report(const char *what, long rc)
{
	printf("%s -> %ld %s\n", what, rc, rc < 0 ? ename(errno) : "");
	fflush(stdout);
}

static int only = -1, idx;
#define TRY(what, call) do { if (only < 0 || only == idx) report(what, (call)); idx++; } while (0)

static int bad_pointers(void)
{
	int port, c, s;
	int l = listener(&port);
	pair(l, port, &c, &s);
	CHECK(send(c, "0123456789", 10, 0) == 10);
	usleep(100000);
	/* Through volatiles, so that the compiler does not see (and warn about) the bad pointers. */
	static void *volatile bad_v = (void *)16;
	static void *volatile kern_v = (void *)0xffffffffff600000UL;
	void *bad = bad_v;
	void *kern = kern_v;
	socklen_t len = 4;
	errno = 0;
	TRY("recv(bad buffer)", recv(s, bad, 10, 0));
	TRY("recv(kernel-half buffer)", recv(s, kern, 10, 0));
	TRY("read(bad buffer)", read(s, bad, 10));
	TRY("send(bad buffer)", send(c, bad, 10, MSG_NOSIGNAL));
	TRY("write(bad buffer)", write(c, bad, 10));
	TRY("getsockopt(bad value)", getsockopt(s, SOL_SOCKET, SO_RCVBUF, bad, &len));
	TRY("getsockopt(bad length)", getsockopt(s, SOL_SOCKET, SO_RCVBUF, &len, bad));
	TRY("setsockopt(bad value)", setsockopt(s, SOL_SOCKET, SO_RCVBUF, bad, 4));
	TRY("getsockname(bad addr)", getsockname(s, bad, &len));
	len = sizeof(struct sockaddr_in);
	TRY("getpeername(bad length)", getpeername(s, bad, bad));
	struct msghdr m = { 0 };
	struct iovec iov = { .iov_base = bad, .iov_len = 10 };
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	TRY("recvmsg(bad iov_base)", recvmsg(s, &m, 0));
	m.msg_iov = bad;
	TRY("recvmsg(bad iov array)", recvmsg(s, &m, 0));
	TRY("sendmsg(bad iov array)", sendmsg(c, &m, MSG_NOSIGNAL));
	TRY("sendmsg(bad msghdr)", sendmsg(c, bad, MSG_NOSIGNAL));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c3 = socket(AF_INET, SOCK_STREAM, 0);
	TRY("connect(bad addr)", connect(c3, bad, sizeof a));
	TRY("bind(bad addr)", bind(c3, bad, sizeof a));
	int fl = fcntl(l, F_GETFL);
	CHECK(fcntl(l, F_SETFL, fl | O_NONBLOCK) == 0);
	TRY("accept(bad addr, nothing pending)", accept4(l, bad, bad, 0) < 0 ? -1 : 0);
	int c4 = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c4, (struct sockaddr *)&a, sizeof a) == 0);
	usleep(50000);
	TRY("accept(bad addr, one pending)", accept4(l, bad, bad, 0) < 0 ? -1 : 0);
	/* The data is still there and the socket still works. */
	char buf[16];
	long n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
	printf("afterwards recv -> %ld\n", n);
	CHECK(send(c, "z", 1, 0) == 1);
	printf("afterwards send -> ok\n");
	return 0;
}

/* ---- a forked child touching the parent's LKL fds ---- */

static void *accept_forever(void *arg)
{
	int s = accept(*(int *)arg, NULL, NULL);
	char b[4];
	long n = recv(s, b, 4, MSG_WAITALL);
	printf("parent: accepted and received %ld bytes\n", n);
	fflush(stdout);
	return (void *)(long)s;
}

static int forked(void)
{
	int port, c, s;
	static int l;
	l = listener(&port);
	pair(l, port, &c, &s);
	pthread_t t;
	/* A parent thread sits in accept while the child runs. */
	CHECK(pthread_create(&t, NULL, accept_forever, &l) == 0);
	usleep(100000);
	int pipefd[2];
	CHECK(pipe(pipefd) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char b[4];
		int v;
		socklen_t len = sizeof v;
		long rc;
#define CHILD(what, call) do { errno = 0; rc = (call); printf("child: %s -> %ld %s\n", what, rc, rc < 0 ? ename(errno) : ""); } while (0)
		CHILD("recv", recv(s, b, 4, MSG_DONTWAIT));
		CHILD("send", send(c, "x", 1, MSG_NOSIGNAL));
		/* The listener follows the fork: made again in the child's own kernel. */
		struct pollfd lp = { .fd = l, .events = POLLIN };
		CHILD("listener poll", poll(&lp, 1, 0));
		CHILD("getsockopt", getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &len));
		CHILD("shutdown", shutdown(s, SHUT_RDWR));
		struct pollfd pf = { .fd = s, .events = POLLIN };
		CHILD("poll", poll(&pf, 1, 0));
		printf("child: poll revents %#x\n", pf.revents);
		int nsock = socket(AF_INET, SOCK_STREAM, 0);
		printf("child: new socket -> %s\n", nsock >= 0 ? "ok" : ename(errno));
		printf("child: close -> %d\n", close(s));
		printf("child: host pipe -> %ld\n", (long)write(pipefd[1], "p", 1));
		fflush(stdout);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	printf("child exit: %s %d\n", WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	char p;
	CHECK(read(pipefd[0], &p, 1) == 1);
	/* The parent's sockets are untouched. */
	CHECK(send(c, "ping", 4, 0) == 4);
	char b[4];
	CHECK(recv(s, b, 4, MSG_WAITALL) == 4);
	printf("parent: existing pair still works\n");
	int c2 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(connect(c2, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(send(c2, "abcd", 4, 0) == 4);
	void *r;
	pthread_join(t, &r);
	printf("parent: blocked accept completed\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	alarm(30);
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	if (!strcmp(m, "close"))
		return close_while_blocked();
	if (!strcmp(m, "storm"))
		return signal_storm(0);
	if (!strcmp(m, "storm-restart"))
		return signal_storm(1);
	if (!strcmp(m, "exit") || !strcmp(m, "return") || !strcmp(m, "thread"))
		return exit_while_busy(m);
	if (!strcmp(m, "leak"))
		return leak();
	if (!strcmp(m, "badptr")) {
		/* `badptr N`: only the Nth bad call (to find each one that crashes). */
		if (argc > 2)
			only = atoi(argv[2]);
		return bad_pointers();
	}
	if (!strcmp(m, "fork"))
		return forked();
	return 2;
}
