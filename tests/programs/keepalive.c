/*
 * keepalive MODE ADDR PORT: listens on ADDR:PORT, prints "listening", accepts one connection,
 * sets MODE's options on it, prints "ready" and waits for a line on stdin (the test first
 * turns the link's blackhole on, for the modes that need it). Then it blocks and prints what
 * ended the wait, "MODE: CALL ERRNO after SECONDS s":
 *   keepalive     SO_KEEPALIVE, TCP_KEEPIDLE 1 s, TCP_KEEPINTVL 1 s, TCP_KEEPCNT 3; recv()
 *   user_timeout  TCP_USER_TIMEOUT 2000 ms; send() 1000 bytes, then recv()
 *   rcvtimeo      SO_RCVTIMEO 500 ms; recv()
 * After a second stdin line it accepts a fresh connection, echoes one read back and prints
 * "echo: N bytes". alarm(30) bounds the whole run ("timeout: ..." and exit status 3).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	static const char msg[] = "timeout: no result within 30 s\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	_exit(3);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(int r, const char *what)
{
	if (r < 0) {
		perror(what);
		exit(1);
	}
}

static void setint(int fd, int level, int opt, int val, const char *what)
{
	check(setsockopt(fd, level, opt, &val, sizeof(val)), what);
}

/* Waits for the test's next line on stdin. */
static void wait_for_go(void)
{
	char line[16];

	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "stdin closed\n");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const char *mode, *call = "recv", *result;
	char buf[1000];
	double start;
	ssize_t n;
	int lfd, fd;

	if (argc != 4 || inet_pton(AF_INET, argv[2], &sin.sin_addr) != 1) {
		fprintf(stderr, "usage: keepalive keepalive|user_timeout|rcvtimeo IPV4 PORT\n");
		return 2;
	}
	mode = argv[1];
	sin.sin_port = htons(atoi(argv[3]));
	signal(SIGALRM, on_alarm);
	alarm(30);
	setvbuf(stdout, NULL, _IOLBF, 0);

	check(lfd = socket(AF_INET, SOCK_STREAM, 0), "socket");
	setint(lfd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	check(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), "bind");
	check(listen(lfd, 8), "listen");
	printf("listening\n");
	check(fd = accept(lfd, NULL, NULL), "accept");

	if (!strcmp(mode, "keepalive")) {
		setint(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
		setint(fd, IPPROTO_TCP, TCP_KEEPIDLE, 1, "TCP_KEEPIDLE");
		setint(fd, IPPROTO_TCP, TCP_KEEPINTVL, 1, "TCP_KEEPINTVL");
		setint(fd, IPPROTO_TCP, TCP_KEEPCNT, 3, "TCP_KEEPCNT");
	} else if (!strcmp(mode, "user_timeout")) {
		setint(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 2000, "TCP_USER_TIMEOUT");
	} else if (!strcmp(mode, "rcvtimeo")) {
		struct timeval tv = { 0, 500000 };

		check(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), "SO_RCVTIMEO");
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	printf("ready\n");
	wait_for_go();

	start = now();
	memset(buf, 'k', sizeof(buf));
	n = 0;
	if (!strcmp(mode, "user_timeout"))
		n = send(fd, buf, sizeof(buf), 0);
	if (n < 0)
		call = "send";
	else
		n = recv(fd, buf, sizeof(buf), 0);
	result = n < 0 ? strerrorname_np(errno) : n ? "data" : "EOF";
	printf("%s: %s %s after %.2f s\n", mode, call, result, now() - start);
	close(fd);

	wait_for_go();
	check(fd = accept(lfd, NULL, NULL), "accept");
	check(n = recv(fd, buf, sizeof(buf), 0), "recv");
	check(send(fd, buf, n, 0), "send");
	printf("echo: %zd bytes\n", n);
	close(fd);
	close(lfd);
	return 0;
}
