/* Listeners with socket options, then fork: what the forked child sees of each inherited
 * listener. Prints one deterministic line per check, so that a run on the host stack and a run
 * under liblkl_hijack.so must print exactly the same text.
 *
 *   fork_listener_options ADDR4 ADDR6 [--connect]
 *
 * ADDR4 and ADDR6 are addresses of this machine (the host stack's in the host run, LKL's under
 * the preload); they are printed as "ADDR4"/"ADDR6", never literally. The parent creates five
 * listeners on fixed ports (18411-18415):
 *
 *   tcp4-addr      ADDR4:18411  SO_REUSEADDR, TCP_DEFER_ACCEPT 5 s, SO_RCVBUF, SO_SNDBUF,
 *                               TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, backlog 7
 *   tcp4-any       0.0.0.0:18412  SO_REUSEADDR, SOCK_CLOEXEC, backlog 300
 *   tcp6-addr      [ADDR6]:18413  IPV6_V6ONLY=1, TCP_DEFER_ACCEPT 1 s, SO_RCVBUF, backlog 5
 *   tcp6-any-dual  [::]:18414   IPV6_V6ONLY=0, TCP_NODELAY, backlog 16
 *   tcp6-any-only  [::]:18415   IPV6_V6ONLY=1, SO_KEEPALIVE, backlog 9
 *
 * all nonblocking, prints their state ("parent:"), forks, and the child prints the state of
 * each inherited listener ("child:"): getsockname, each option as getsockopt reports it
 * (SO_RCVBUF doubled, TCP_DEFER_ACCEPT rounded up to whole retransmission periods), the backlog
 * (TCP_INFO's tcpi_sacked of a listener) and queue length, O_NONBLOCK and FD_CLOEXEC, that
 * poll finds nothing to accept (0, not POLLNVAL) and that accept says EAGAIN (not EBADF), and
 * which IPv4 binds the IPv6 wildcard listeners leave free (V6ONLY in effect). With --connect
 * the child then connects to each listener (IPv4 to the dual-stack one as well), sends two
 * bytes and accepts: the accepted socket's peer, bytes and the options it inherits
 * ("child-accept:"). The parent, after the child exits, checks its own listeners once more
 * ("parent-after:"): the child must not have taken them away.
 *
 * Plain C11 + POSIX/Linux; built by tests/listener_options_survive_fork_as_on_the_host.rs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

static struct in_addr addr4;
static struct in6_addr addr6;

/* "ADDR4", "ADDR6", "::ffff:ADDR4", a wildcard, or the literal address for anything else. */
static const char *addr_str(const struct sockaddr_storage *ss) {
    static char bufs[4][INET6_ADDRSTRLEN + 16];
    static unsigned next;
    char *buf = bufs[next++ % 4];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        if (s->sin_addr.s_addr == addr4.s_addr)
            return "ADDR4";
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof bufs[0]);
        return buf;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        if (IN6_ARE_ADDR_EQUAL(&s->sin6_addr, &addr6))
            return "ADDR6";
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) &&
            memcmp(&s->sin6_addr.s6_addr[12], &addr4, 4) == 0)
            return "::ffff:ADDR4";
        inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof bufs[0]);
        return buf;
    }
    snprintf(buf, sizeof bufs[0], "family%d", ss->ss_family);
    return buf;
}

static int port_of(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

static socklen_t sockaddr_of(int family, int any, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr.s_addr = any ? htonl(INADDR_ANY) : addr4.s_addr;
        return sizeof *s;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr = any ? in6addr_any : addr6;
    return sizeof *s;
}

/* ---------- the listeners ---------- */

struct listener {
    const char *name;
    int family, any, port, backlog, cloexec;
    int reuseaddr, defer_accept, rcvbuf, sndbuf, nodelay, keepalive, keepidle, keepintvl,
        keepcnt, v6only; /* -1: left alone */
    int fd;
};

static struct listener listeners[] = {
    {"tcp4-addr", AF_INET, 0, 18411, 7, 0, 1, 5, 65536, 65536, 1, 1, 77, 11, 4, -1, -1},
    {"tcp4-any", AF_INET, 1, 18412, 300, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
    {"tcp6-addr", AF_INET6, 0, 18413, 5, 0, -1, 1, 32768, -1, -1, -1, -1, -1, -1, 1, -1},
    {"tcp6-any-dual", AF_INET6, 1, 18414, 16, 0, -1, -1, -1, -1, 1, -1, -1, -1, -1, 0, -1},
    {"tcp6-any-only", AF_INET6, 1, 18415, 9, 0, -1, -1, -1, -1, -1, 1, -1, -1, -1, 1, -1},
};
#define NLISTENERS (int)(sizeof listeners / sizeof listeners[0])

static void set_opt(const char *name, int fd, int level, int opt, int value) {
    if (value < 0)
        return;
    if (setsockopt(fd, level, opt, &value, sizeof value) != 0)
        say("setsockopt %s %d: -1 %s", name, value, errname(errno));
}

static void create(struct listener *l) {
    int type = SOCK_STREAM | SOCK_NONBLOCK | (l->cloexec ? SOCK_CLOEXEC : 0);
    l->fd = socket(l->family, type, 0);
    if (l->fd < 0) {
        say("%s: socket: -1 %s", l->name, errname(errno));
        exit(1);
    }
    set_opt("SO_REUSEADDR", l->fd, SOL_SOCKET, SO_REUSEADDR, l->reuseaddr);
    set_opt("TCP_DEFER_ACCEPT", l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, l->defer_accept);
    set_opt("SO_RCVBUF", l->fd, SOL_SOCKET, SO_RCVBUF, l->rcvbuf);
    set_opt("SO_SNDBUF", l->fd, SOL_SOCKET, SO_SNDBUF, l->sndbuf);
    set_opt("TCP_NODELAY", l->fd, IPPROTO_TCP, TCP_NODELAY, l->nodelay);
    set_opt("SO_KEEPALIVE", l->fd, SOL_SOCKET, SO_KEEPALIVE, l->keepalive);
    set_opt("TCP_KEEPIDLE", l->fd, IPPROTO_TCP, TCP_KEEPIDLE, l->keepidle);
    set_opt("TCP_KEEPINTVL", l->fd, IPPROTO_TCP, TCP_KEEPINTVL, l->keepintvl);
    set_opt("TCP_KEEPCNT", l->fd, IPPROTO_TCP, TCP_KEEPCNT, l->keepcnt);
    set_opt("IPV6_V6ONLY", l->fd, IPPROTO_IPV6, IPV6_V6ONLY, l->v6only);
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(l->family, l->any, l->port, &ss);
    if (bind(l->fd, (struct sockaddr *)&ss, len) != 0) {
        say("%s: bind: -1 %s", l->name, errname(errno));
        exit(1);
    }
    if (listen(l->fd, l->backlog) != 0) {
        say("%s: listen: -1 %s", l->name, errname(errno));
        exit(1);
    }
}

/* ---------- what a process sees of a listener ---------- */

static void print_int_opt(const struct listener *l, const char *name, int level, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(l->fd, level, opt, &v, &len) != 0)
        say("%s: %s: -1 %s", l->name, name, errname(errno));
    else
        say("%s: %s: %d", l->name, name, v);
}

static void print_state(const struct listener *l) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0)
        say("%s: getsockname: -1 %s", l->name, errname(errno));
    else
        say("%s: getsockname: %s %s port=%d len=%u", l->name,
            ss.ss_family == AF_INET ? "inet" : ss.ss_family == AF_INET6 ? "inet6" : "other",
            addr_str(&ss), port_of(&ss), (unsigned)len);

    struct stat st;
    if (fstat(l->fd, &st) != 0)
        say("%s: fstat: -1 %s", l->name, errname(errno));
    else
        say("%s: fstat: S_ISSOCK %d", l->name, S_ISSOCK(st.st_mode) ? 1 : 0);
    int fl = fcntl(l->fd, F_GETFL);
    int fdfl = fcntl(l->fd, F_GETFD);
    say("%s: O_NONBLOCK: %d FD_CLOEXEC: %d", l->name, fl < 0 ? -1 : !!(fl & O_NONBLOCK),
        fdfl < 0 ? -1 : !!(fdfl & FD_CLOEXEC));

    print_int_opt(l, "SO_ACCEPTCONN", SOL_SOCKET, SO_ACCEPTCONN);
    print_int_opt(l, "SO_TYPE", SOL_SOCKET, SO_TYPE);
    print_int_opt(l, "SO_DOMAIN", SOL_SOCKET, SO_DOMAIN);
    print_int_opt(l, "SO_PROTOCOL", SOL_SOCKET, SO_PROTOCOL);
    print_int_opt(l, "SO_ERROR", SOL_SOCKET, SO_ERROR);
    print_int_opt(l, "SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR);
    print_int_opt(l, "SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE);
    print_int_opt(l, "SO_RCVBUF", SOL_SOCKET, SO_RCVBUF);
    print_int_opt(l, "SO_SNDBUF", SOL_SOCKET, SO_SNDBUF);
    print_int_opt(l, "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY);
    print_int_opt(l, "TCP_DEFER_ACCEPT", IPPROTO_TCP, TCP_DEFER_ACCEPT);
    print_int_opt(l, "TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE);
    print_int_opt(l, "TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL);
    print_int_opt(l, "TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT);
    if (l->family == AF_INET6)
        print_int_opt(l, "IPV6_V6ONLY", IPPROTO_IPV6, IPV6_V6ONLY);

    /* A listener's TCP_INFO: tcpi_sacked is its backlog (sk_max_ack_backlog), tcpi_unacked
     * its accept queue (sk_ack_backlog). */
    struct tcp_info ti;
    len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(l->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        say("%s: TCP_INFO: -1 %s", l->name, errname(errno));
    else
        say("%s: TCP_INFO: state %s backlog %u queued %u", l->name,
            ti.tcpi_state == TCP_LISTEN ? "LISTEN" : "other", ti.tcpi_sacked, ti.tcpi_unacked);

    struct pollfd p = {.fd = l->fd, .events = POLLIN | POLLOUT};
    int n = poll(&p, 1, 50);
    if (n < 0)
        say("%s: poll 50ms: -1 %s", l->name, errname(errno));
    else
        say("%s: poll 50ms: %d revents%s%s%s%s%s", l->name, n, p.revents ? "" : " none",
            p.revents & POLLIN ? " IN" : "", p.revents & POLLOUT ? " OUT" : "",
            p.revents & POLLNVAL ? " NVAL" : "",
            p.revents & (POLLERR | POLLHUP) ? " ERR/HUP" : "");

    int c = accept(l->fd, NULL, NULL);
    if (c >= 0) {
        say("%s: accept (nothing pending): a connection", l->name);
        close(c);
    } else {
        say("%s: accept (nothing pending): -1 %s", l->name, errname(errno));
    }
}

/* Whether an IPv4 socket can bind 0.0.0.0:port while the IPv6 wildcard listener holds it. */
static void probe_v4_bind(const char *name, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        say("bind 0.0.0.0:%d beside %s: socket -1 %s", port, name, errname(errno));
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(AF_INET, 1, port, &ss);
    if (bind(s, (struct sockaddr *)&ss, len) == 0)
        say("bind 0.0.0.0:%d beside %s: ok", port, name);
    else
        say("bind 0.0.0.0:%d beside %s: -1 %s", port, name, errname(errno));
    close(s);
}

/* ---------- connections from the child to its own listeners ---------- */

static void print_accepted_opt(const char *what, int fd, int level, int opt, const char *name) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, opt, &v, &len) != 0)
        say("%s: accepted %s: -1 %s", what, name, errname(errno));
    else
        say("%s: accepted %s: %d", what, name, v);
}

/* Connects to listener `l` at its address (or, for a wildcard, at ADDR4/ADDR6 of `family`),
 * sends "hi", waits up to 5 s for the listener to be readable, accepts, reads. */
static void connect_and_accept(const struct listener *l, int family) {
    char what[64];
    snprintf(what, sizeof what, "%s via %s", l->name, family == AF_INET ? "ADDR4" : "ADDR6");
    struct sockaddr_storage to;
    socklen_t tolen = sockaddr_of(family, 0, l->port, &to);
    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0) {
        say("%s: socket: -1 %s", what, errname(errno));
        return;
    }
    /* A connect that nobody answers gives up after 5 s (EINPROGRESS), not at the watchdog. */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c, (struct sockaddr *)&to, tolen) != 0) {
        say("%s: connect: -1 %s", what, errname(errno));
        close(c);
        return;
    }
    say("%s: connect: ok", what);
    say("%s: send: %ld", what, (long)send(c, "hi", 2, 0));
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int n = poll(&p, 1, 5000);
    say("%s: poll listener (5s): %d%s", what, n, n > 0 && (p.revents & POLLIN) ? " IN" : "");
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    memset(&from, 0, sizeof from);
    int a = accept(l->fd, (struct sockaddr *)&from, &fromlen);
    if (a < 0) {
        say("%s: accept: -1 %s", what, errname(errno));
        close(c);
        return;
    }
    say("%s: accept: peer %s len=%u", what, addr_str(&from), (unsigned)fromlen);
    struct sockaddr_storage local;
    socklen_t locallen = sizeof local;
    memset(&local, 0, sizeof local);
    getsockname(a, (struct sockaddr *)&local, &locallen);
    say("%s: accepted getsockname: %s port=%d", what, addr_str(&local), port_of(&local));
    /* accept (not accept4) gives a blocking socket whatever the listener's O_NONBLOCK. */
    int fl = fcntl(a, F_GETFL);
    say("%s: accepted O_NONBLOCK: %d", what, fl < 0 ? -1 : !!(fl & O_NONBLOCK));
    struct pollfd pa = {.fd = a, .events = POLLIN};
    poll(&pa, 1, 5000);
    char buf[8] = {0};
    long got = recv(a, buf, sizeof buf, 0);
    say("%s: accepted recv: %ld '%.*s'", what, got, got > 0 ? (int)got : 0, buf);
    print_accepted_opt(what, a, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
    print_accepted_opt(what, a, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
    print_accepted_opt(what, a, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE");
    print_accepted_opt(what, a, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL");
    print_accepted_opt(what, a, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT");
    close(a);
    close(c);
}

int main(int argc, char **argv) {
    if (argc < 3 || inet_pton(AF_INET, argv[1], &addr4) != 1 ||
        inet_pton(AF_INET6, argv[2], &addr6) != 1) {
        fprintf(stderr, "usage: %s ADDR4 ADDR6 [--connect]\n", argv[0]);
        return 2;
    }
    int do_connect = argc > 3 && strcmp(argv[3], "--connect") == 0;
    alarm(50); /* a hang fails the run instead of holding the test */

    section = "parent";
    for (int i = 0; i < NLISTENERS; i++)
        create(&listeners[i]);
    for (int i = 0; i < NLISTENERS; i++)
        print_state(&listeners[i]);
    probe_v4_bind("tcp6-any-dual", 18414);
    probe_v4_bind("tcp6-any-only", 18415);

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        say("fork: -1 %s", errname(errno));
        return 1;
    }
    if (pid == 0) {
        section = "child";
        alarm(40);
        for (int i = 0; i < NLISTENERS; i++)
            print_state(&listeners[i]);
        probe_v4_bind("tcp6-any-dual", 18414);
        probe_v4_bind("tcp6-any-only", 18415);
        if (do_connect) {
            section = "child-accept";
            for (int i = 0; i < NLISTENERS; i++)
                connect_and_accept(&listeners[i], listeners[i].family);
            /* The dual-stack wildcard listener takes IPv4 too (as ::ffff:ADDR4). */
            connect_and_accept(&listeners[3], AF_INET);
        }
        section = "child";
        say("done");
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    section = "parent-after";
    if (WIFEXITED(status))
        say("child exit %d", WEXITSTATUS(status));
    else
        say("child killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    for (int i = 0; i < NLISTENERS; i++)
        print_state(&listeners[i]);
    say("done");
    return 0;
}
