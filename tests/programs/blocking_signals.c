/*
 * Blocking socket calls against signals, timeouts and other threads. Prints one line per
 * check; the test runs it with and without the preload and expects the same lines.
 * Networking on 127.0.0.1 only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t caught;

static void on_alarm(int sig)
{
	(void)sig;
	caught++;
}

static void handle_alarm(int restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGALRM, &sa, NULL);
	caught = 0;
}

static void alarm_in_ms(int ms)
{
	struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *err(long r)
{
	if (r >= 0)
		return "ok";
	return strerrorname_np(errno);
}

static struct sockaddr_in listen_addr;

static int listener(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof(listen_addr);

	memset(&listen_addr, 0, sizeof(listen_addr));
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&listen_addr, sizeof(listen_addr));
	listen(s, 8);
	getsockname(s, (struct sockaddr *)&listen_addr, &len);
	return s;
}

static int dial(void)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);

	connect(c, (struct sockaddr *)&listen_addr, sizeof(listen_addr));
	return c;
}

static void *dial_later(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	close(dial());
	return NULL;
}

struct closer {
	int fd;
	int how; /* -1: close, else shutdown(how) */
};

static void *close_later(void *arg)
{
	struct closer *c = arg;

	usleep(200 * 1000);
	if (c->how < 0)
		close(c->fd);
	else
		shutdown(c->fd, c->how);
	return NULL;
}

int main(void)
{
	int l = listener(), c, a, ep;
	long r;
	char buf[64];
	double t;
	pthread_t th;
	struct epoll_event ev = { .events = EPOLLIN }, out;

	/* A handler without SA_RESTART interrupts a blocking accept. */
	handle_alarm(0);
	alarm_in_ms(100);
	r = accept(l, NULL, NULL);
	printf("accept, handler without SA_RESTART: %s, handler ran %d\n", err(r), caught);

	/* With SA_RESTART the accept goes on and takes the connection made later. */
	handle_alarm(1);
	pthread_create(&th, NULL, dial_later, NULL);
	alarm_in_ms(100);
	a = accept(l, NULL, NULL);
	printf("accept, handler with SA_RESTART: %s, handler ran %d\n", err(a), caught);
	pthread_join(th, NULL);
	close(a);

	/* recv: the same two cases. */
	c = dial();
	a = accept(l, NULL, NULL);
	handle_alarm(0);
	alarm_in_ms(100);
	r = recv(a, buf, sizeof(buf), 0);
	printf("recv, handler without SA_RESTART: %s, handler ran %d\n", err(r), caught);

	/* SO_RCVTIMEO: EAGAIN once it passes; a signal then interrupts even with SA_RESTART. */
	struct timeval tv = { 0, 200 * 1000 };
	setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t = now();
	r = recv(a, buf, sizeof(buf), 0);
	printf("recv with SO_RCVTIMEO 200ms: %s, waited >= 0.19s %d\n", err(r), now() - t >= 0.19);
	handle_alarm(1);
	alarm_in_ms(50);
	r = recv(a, buf, sizeof(buf), 0);
	printf("recv with SO_RCVTIMEO, SA_RESTART handler: %s, handler ran %d\n", err(r), caught);
	tv.tv_usec = 0;
	setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	/* epoll_wait is never restarted. */
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = a;
	epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev);
	handle_alarm(1);
	alarm_in_ms(100);
	r = epoll_wait(ep, &out, 1, 2000);
	printf("epoll_wait, SA_RESTART handler: %s, handler ran %d\n", err(r), caught);

	/* Another thread shutting the socket down wakes a blocked recv with EOF. */
	struct closer cl = { a, SHUT_RD };
	pthread_create(&th, NULL, close_later, &cl);
	r = recv(a, buf, sizeof(buf), 0);
	printf("recv woken by shutdown(SHUT_RD) in another thread: %s, %ld bytes\n", err(r), r < 0 ? 0 : r);
	pthread_join(th, NULL);

	/* The peer's data still arrives after a blocking wait. */
	pthread_create(&th, NULL, close_later, &(struct closer){ c, SHUT_WR });
	r = recv(a, buf, sizeof(buf), 0);
	printf("recv after peer's shutdown(SHUT_WR): %s, %ld bytes\n", err(r), r < 0 ? 0 : r);
	pthread_join(th, NULL);

	/* MSG_WAITALL collects what arrives in several pieces. */
	close(a);
	close(c);
	c = dial();
	a = accept(l, NULL, NULL);
	send(c, "01234", 5, 0);
	pthread_create(&th, NULL, close_later, &(struct closer){ c, SHUT_WR });
	r = recv(a, buf, 10, MSG_WAITALL);
	pthread_join(th, NULL);
	printf("recv MSG_WAITALL ended by EOF: %s, %ld bytes\n", err(r), r);
	close(a);
	close(c);
	c = dial();
	a = accept(l, NULL, NULL);
	send(c, "01234", 5, 0);
	usleep(100 * 1000);
	send(c, "56789", 5, 0);
	r = recv(a, buf, 10, MSG_WAITALL);
	printf("recv MSG_WAITALL across two sends: %s, %ld bytes, %.10s\n", err(r), r, buf);

	/* A blocking accept in another thread returns when the listener is shut down. */
	struct closer lc = { l, SHUT_RDWR };
	pthread_create(&th, NULL, close_later, &lc);
	r = accept(l, NULL, NULL);
	printf("accept woken by shutdown of the listener: %s\n", err(r));
	pthread_join(th, NULL);
	return 0;
}
