/* Opens 1500 host fds before its first socket, so that every socket it then makes has a
 * number above 1024 (FD_SETSIZE), and runs TCP and UDP echoes over 127.0.0.1 driven by poll
 * and epoll on those sockets together with a host pipe. Prints one deterministic line per
 * check (never fd numbers). Built by tests/high_fd_numbers_work.rs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOST_FDS 1500
#define ECHO_BYTES (256 * 1024)
#define HIGH_FD 1900

static int host_fds[HOST_FDS];

static const char *tf(int b) { return b ? "true" : "false"; }

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint8_t pattern(size_t i, unsigned round) { return (uint8_t)(i * 131 + i / 977 + round); }

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return in;
}

static uint16_t local_port(int fd) {
    struct sockaddr_in in;
    socklen_t len = sizeof in;
    if (getsockname(fd, (struct sockaddr *)&in, &len) < 0)
        die("getsockname");
    return ntohs(in.sin_port);
}

/* The echo server's side of one connection: everything read is written back until EOF. */
static void *echo_main(void *arg) {
    int fd = *(int *)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                return NULL;
            off += w;
        }
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

/* Sends ECHO_BYTES through the nonblocking socket c and checks what comes back, waiting with
 * poll (use_epoll 0) or epoll on c and the pipe's read end pr; a byte already in the pipe
 * must be reported once. Prints one line. */
static void echo_round(const char *name, int c, int pr, int use_epoll, unsigned round) {
    static uint8_t out[ECHO_BYTES], in[ECHO_BYTES];
    for (size_t i = 0; i < ECHO_BYTES; i++)
        out[i] = pattern(i, round);
    size_t sent = 0, got = 0;
    int pipe_events = 0, waits = 0, errors = 0;
    int ep = -1;
    if (use_epoll) {
        ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.fd = c};
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c, &e) < 0)
            die("epoll_ctl socket");
        e = (struct epoll_event){.events = EPOLLIN, .data.fd = pr};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, pr, &e) < 0)
            die("epoll_ctl pipe");
    }
    double deadline = now_ms() + 20000;
    while (got < ECHO_BYTES && now_ms() < deadline) {
        int readable = 0, writable = 0, piped = 0;
        waits++;
        if (use_epoll) {
            if (sent == ECHO_BYTES) {
                struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c, &e);
            }
            struct epoll_event ev[4];
            int n = epoll_wait(ep, ev, 4, 5000);
            if (n <= 0) {
                errors++;
                break;
            }
            for (int i = 0; i < n; i++) {
                if (ev[i].data.fd == pr)
                    piped = 1;
                else {
                    readable |= !!(ev[i].events & EPOLLIN);
                    writable |= !!(ev[i].events & EPOLLOUT);
                }
            }
        } else {
            struct pollfd p[2] = {{c, (short)(POLLIN | (sent < ECHO_BYTES ? POLLOUT : 0)), 0},
                                  {pr, POLLIN, 0}};
            int n = poll(p, 2, 5000);
            if (n <= 0) {
                errors++;
                break;
            }
            readable = !!(p[0].revents & POLLIN);
            writable = !!(p[0].revents & POLLOUT);
            piped = !!(p[1].revents & POLLIN);
            if (p[0].revents & (POLLERR | POLLNVAL))
                errors++;
        }
        if (piped) {
            char b;
            if (read(pr, &b, 1) == 1)
                pipe_events++;
        }
        if (writable && sent < ECHO_BYTES) {
            ssize_t w = send(c, out + sent, ECHO_BYTES - sent, 0);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                errors++;
        }
        if (readable) {
            ssize_t r = recv(c, in + got, ECHO_BYTES - got, 0);
            if (r > 0)
                got += (size_t)r;
            else if (r == 0 || errno != EAGAIN) {
                errors++;
                break;
            }
        }
    }
    if (ep >= 0)
        close(ep);
    printf("%s: sent %zu, echoed %zu, match %s, pipe events %d, errors %d, waited more than "
           "once: %s\n",
           name, sent, got, tf(got == ECHO_BYTES && memcmp(in, out, ECHO_BYTES) == 0),
           pipe_events, errors, tf(waits > 1));
}

struct delayed {
    pthread_t thread;
    int fd;
};

static void *delayed_write(void *arg) {
    struct delayed *d = arg;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    if (write(d->fd, "!", 1) != 1)
        perror("delayed write");
    return NULL;
}

int main(void) {
    alarm(30); /* a hung call ends the run (SIGALRM) instead of hanging the test */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit");
    if (rl.rlim_cur < 2048) {
        rl.rlim_cur = 2048;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur; /* needs root; the test runs as root */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die("setrlimit");
    }
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        die("open /dev/null");
    host_fds[0] = null;
    int opened = 1;
    for (; opened < HOST_FDS; opened++) {
        host_fds[opened] = dup(null);
        if (host_fds[opened] < 0)
            die("dup /dev/null");
    }
    printf("host fds opened: %d\n", opened);

    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = loopback(0);
    if (l < 0)
        die("socket");
    printf("listener number above 1024: %s\n", tf(l > 1024));
    if (bind(l, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(l, 16) < 0)
        die("bind/listen");
    int c = socket(AF_INET, SOCK_STREAM, 0);
    addr = loopback(local_port(l));
    if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (a < 0)
        die("accept4");
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        die("pipe2");
    printf("client, accepted and pipe numbers above 1024: %s\n",
           tf(c > 1024 && a > 1024 && p[0] > 1024));
    pthread_t echo;
    pthread_create(&echo, NULL, echo_main, &a);
    if (fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl O_NONBLOCK");

    if (write(p[1], "p", 1) != 1)
        die("write pipe");
    echo_round("echo over poll", c, p[0], 0, 1);
    if (write(p[1], "p", 1) != 1)
        die("write pipe");
    echo_round("echo over epoll", c, p[0], 1, 2);

    /* The wait on the socket and the pipe ends when the pipe is written from another thread. */
    struct delayed d = {.fd = p[1]};
    pthread_create(&d.thread, NULL, delayed_write, &d);
    struct pollfd pw[2] = {{c, POLLIN, 0}, {p[0], POLLIN, 0}};
    double t0 = now_ms();
    int n = poll(pw, 2, 5000);
    printf("poll woken by the pipe: %d, socket %s, pipe %s, before the timeout: %s\n", n,
           tf(pw[0].revents & POLLIN), tf(pw[1].revents & POLLIN), tf(now_ms() - t0 < 4000));
    pthread_join(d.thread, NULL);
    char b;
    if (read(p[0], &b, 1) != 1)
        die("read pipe");

    /* ...and when echoed data arrives on the socket. */
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
    e.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e);
    printf("epoll number above 1024: %s\n", tf(ep > 1024));
    if (send(c, "?", 1, 0) != 1)
        die("send");
    struct epoll_event ev[2];
    n = epoll_wait(ep, ev, 2, 5000);
    printf("epoll woken by the echo: %d, tag %u, readable %s\n", n, n > 0 ? ev[0].data.u32 : 0,
           tf(n > 0 && (ev[0].events & EPOLLIN)));
    if (recv(c, &b, 1, 0) != 1)
        die("recv echo");
    close(ep);

    /* A socket moved to a chosen high number keeps working. */
    int high = dup2(c, HIGH_FD);
    close(c);
    printf("dup2 to %d: %s\n", HIGH_FD, tf(high == HIGH_FD));
    fcntl(high, F_SETFL, fcntl(high, F_GETFL) & ~O_NONBLOCK);
    ssize_t sent = send(high, "high", 4, 0);
    char buf[8] = {0};
    ssize_t got = recv(high, buf, 4, MSG_WAITALL);
    printf("echo via the high number: sent %zd, got %zd '%s'\n", sent, got, buf);

    /* UDP above 1024. */
    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = loopback(0);
    if (bind(u1, (struct sockaddr *)&any, sizeof any) < 0 ||
        bind(u2, (struct sockaddr *)&any, sizeof any) < 0)
        die("bind udp");
    struct sockaddr_in to = loopback(local_port(u2));
    sent = sendto(u1, "udp-datagram", 12, 0, (struct sockaddr *)&to, sizeof to);
    struct pollfd pu[2] = {{u2, POLLIN, 0}, {p[0], POLLIN, 0}};
    n = poll(pu, 2, 5000);
    char dgram[32] = {0};
    got = recv(u2, dgram, sizeof dgram - 1, 0);
    printf("udp: numbers above 1024 %s, sent %zd, poll %d, got %zd '%s'\n",
           tf(u1 > 1024 && u2 > 1024), sent, n, got, dgram);
    close(u1);
    close(u2);

    /* Giving the host fds back: sockets made now get low numbers, and low and high sockets
     * work side by side. */
    int closed = 0;
    for (int i = 0; i < HOST_FDS; i++)
        closed += close(host_fds[i]) == 0;
    printf("host fds closed: %d\n", closed);
    int low = socket(AF_INET, SOCK_STREAM, 0);
    printf("new socket number below 1024: %s\n", tf(low >= 0 && low < 1024));
    if (connect(low, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect low");
    int la = accept(l, NULL, NULL);
    send(low, "low", 3, 0);
    struct pollfd pm[3] = {{la, POLLIN, 0}, {high, POLLIN, 0}, {p[0], POLLIN, 0}};
    n = poll(pm, 3, 5000);
    printf("low socket's data wakes a poll over low and high sockets: %d [%s %s %s]\n", n,
           tf(pm[0].revents & POLLIN), tf(pm[1].revents & POLLIN), tf(pm[2].revents & POLLIN));
    close(low);
    close(la);

    shutdown(high, SHUT_WR);
    pthread_join(echo, NULL);
    got = recv(high, buf, sizeof buf, 0);
    printf("after half-close the echo side ends: recv %zd\n", got);
    close(high);
    close(a);
    close(l);
    close(p[0]);
    close(p[1]);
    printf("done\n");
    return 0;
}
