/* Exercises every socket-related libc call a server imports, on 127.0.0.1 and ::1, and prints
 * one deterministic line per check: results, errno names, byte counts, flags. Never fd numbers,
 * kernel-chosen ports or timings (only "waited>=timeout" style booleans), so that a run on the
 * host stack and a run under liblkl_hijack.so must print exactly the same text.
 *
 *   socket_calls                    run every check
 *   socket_calls --listen-and-wait  listen on 127.0.0.1:0 and [::1]:0, bind UDP 127.0.0.1:0,
 *                                   print "ports TCP4 TCP6 UDP4", wait for a byte on stdin
 *                                   (lets a test look for the sockets with `ss`)
 *
 * Plain C11 + POSIX/Linux; built by tests/socket_calls_match_host.rs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
int close_range(unsigned int first, unsigned int last, int flags);

/* glibc's fortified entry points (what -D_FORTIFY_SOURCE builds bind to), called directly so
 * that they are exercised without building the whole program fortified. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                const sigset_t *ss, size_t fdslen);

/* A number no fd of this program (or, presumably, of the library) ever has. */
#define NEVER_OPEN_FD 900
#define SHORT_MS 100 /* timeouts that must expire */
#define LONG_MS 5000 /* timeouts for events that will come */

#include "report.h"

/* "what: ok" for a new fd (its number is never printed), or "what: -1 ENAME". */
static int fd_ok(const char *what, int fd) {
    if (fd < 0)
        say("%s: -1 %s", what, errname(errno));
    else
        say("%s: ok", what);
    return fd;
}

/* "what: N" for a count or 0, or "what: -1 ENAME". */
static long rc(const char *what, long r) {
    if (r < 0)
        say("%s: -1 %s", what, errname(errno));
    else
        say("%s: %ld", what, r);
    return r;
}

static const char *tf(int b) { return b ? "true" : "false"; }

static const char *events_str(unsigned ev) {
    /* Several results may appear in one say(): rotate through buffers. */
    static char bufs[8][128];
    static unsigned next;
    char *buf = bufs[next++ % 8];
    static const struct { unsigned bit; const char *name; } names[] = {
        {POLLIN, "IN"},   {POLLPRI, "PRI"}, {POLLOUT, "OUT"},     {POLLERR, "ERR"},
        {POLLHUP, "HUP"}, {POLLNVAL, "NVAL"}, {POLLRDHUP, "RDHUP"},
    };
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (ev & names[i].bit) {
            if (buf[0])
                strcat(buf, "|");
            strcat(buf, names[i].name);
            ev &= ~names[i].bit;
        }
    }
    /* EPOLLIN == POLLIN etc.; anything left (RDNORM, WRNORM, ...) in hex. */
    if (ev)
        snprintf(buf + strlen(buf), sizeof bufs[0] - strlen(buf), "%s0x%x", buf[0] ? "|" : "", ev);
    if (!buf[0])
        strcpy(buf, "-");
    return buf;
}

/* ---------- time ---------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Whether a call that started at t0 waited about `ms` (10% slack for coarse clocks). */
static int waited(double t0, int ms) { return now_ms() - t0 >= ms * 0.9; }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---------- addresses ---------- */

static socklen_t loopback(int family, struct sockaddr_storage *ss, uint16_t port) {
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr = in6addr_loopback;
    return sizeof *in6;
}

static uint16_t port_of(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

/* "127.0.0.1 port=nonzero": the address, and only whether the port is set. */
static const char *addr_str(const struct sockaddr_storage *ss, socklen_t len) {
    static char buf[160];
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
    } else if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
    } else {
        snprintf(buf, sizeof buf, "family=%d len=%u", ss->ss_family, (unsigned)len);
        return buf;
    }
    snprintf(buf, sizeof buf, "%s %s port=%s len=%u", ss->ss_family == AF_INET ? "inet" : "inet6",
             ip, port_of(ss) ? "nonzero" : "zero", (unsigned)len);
    return buf;
}

static void print_name(const char *what, int (*get)(int, struct sockaddr *, socklen_t *), int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (get(fd, (struct sockaddr *)&ss, &len) < 0)
        say("%s: -1 %s", what, errname(errno));
    else
        say("%s: %s", what, addr_str(&ss, len));
}

static uint16_t local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return port_of(&ss);
}

static uint16_t remote_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return port_of(&ss);
}

/* ---------- helpers (quiet: failures show up in the checks that use them) ---------- */

/* A socket of `type` bound to the loopback address of `family`, port chosen by the kernel;
 * stream sockets listen. */
static int bound(int family, int type) {
    int fd = socket(family, type, 0);
    struct sockaddr_storage ss;
    socklen_t len = loopback(family, &ss, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0)
        return -1;
    if ((type & 0xf) == SOCK_STREAM && listen(fd, 64) < 0)
        return -1;
    return fd;
}

static int connect_to(int fd, int family, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = loopback(family, &ss, port);
    return connect(fd, (struct sockaddr *)&ss, len);
}

/* A connected TCP pair: *c the client, *a the accepted end. */
static void tcp_pair(int family, int *c, int *a) {
    int l = bound(family, SOCK_STREAM);
    *c = socket(family, SOCK_STREAM, 0);
    connect_to(*c, family, local_port(l));
    *a = accept(l, NULL, NULL);
    close(l);
}

/* A port on which nothing listens: bound by a socket that is closed again. */
static uint16_t closed_port(int family, int type) {
    int fd = socket(family, type, 0);
    struct sockaddr_storage ss;
    socklen_t len = loopback(family, &ss, 0);
    bind(fd, (struct sockaddr *)&ss, len);
    uint16_t port = local_port(fd);
    close(fd);
    return port;
}

/* Waits (up to LONG_MS) until fd is readable: data sent over loopback may arrive a little
 * later than send() returns, and checks that expect it queued must not race with it. */
static void settle(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, LONG_MS);
}

/* Receives whatever is queued (after settle) and prints it: "what: N 'text'". */
static void recv_show(const char *what, int fd) {
    char buf[256];
    settle(fd);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        say("%s: -1 %s", what, errname(errno));
        return;
    }
    buf[n] = 0;
    say("%s: %zd '%s'", what, n, buf);
}

/* Empties a nonblocking-readable fd. */
static void drain(int fd) {
    char buf[4096];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        if (read(fd, buf, sizeof buf) <= 0)
            break;
    }
}

/* Sends on nonblocking socket fd until its send buffer stays full (not writable for 300ms:
 * on a loaded machine the ACKs that free space can take longer than a short quiet spell, and
 * a wait for writability that follows would then see them); returns the bytes queued. */
static size_t fill_sndbuf(int fd) {
    static char chunk[65536];
    size_t total = 0;
    for (int round = 0; round < 100; round++) {
        ssize_t n;
        while ((n = send(fd, chunk, sizeof chunk, MSG_DONTWAIT)) > 0)
            total += (size_t)n;
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 300) == 0)
            break;
    }
    return total;
}

static int get_int(int fd, int level, int opt) {
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, opt, &v, &len) < 0)
        return -errno;
    return v;
}

static void show_flags(const char *what, int fd) {
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0)
        say("%s: -1 %s", what, errname(errno));
    else
        say("%s: nonblock=%d cloexec=%d", what, !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC));
}

static const char *filetype(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0)
        return errname(errno);
    if (S_ISSOCK(st.st_mode))
        return "socket";
    if (S_ISFIFO(st.st_mode))
        return "fifo";
    if (S_ISREG(st.st_mode))
        return "regular";
    if (S_ISCHR(st.st_mode))
        return "chardev";
    return "other";
}

/* ---------- delayed actions from a helper thread ---------- */

enum action {
    SEND_BYTE,
    WRITE_BYTE,
    CONNECT_V4,
    SEND_TWO_HALVES,
    SIGNAL_THREAD,  /* SIGUSR1: handler without SA_RESTART */
    SIGNAL_RESTART, /* SIGUSR2: handler with SA_RESTART */
    DRAIN,
    SHUT_READ,
    SHUT_BOTH,
};

struct delayed {
    pthread_t thread;
    int ms;
    enum action action;
    int fd;
    uint16_t port;   /* CONNECT_V4 */
    size_t count;    /* DRAIN: bytes to read, then bytes read */
    pthread_t target;
};

static void *delayed_main(void *arg) {
    struct delayed *d = arg;
    sleep_ms(d->ms);
    switch (d->action) {
    case SEND_BYTE:
        send(d->fd, "!", 1, 0);
        break;
    case WRITE_BYTE:
        if (write(d->fd, "!", 1) != 1)
            perror("delayed write");
        break;
    case CONNECT_V4:
        connect_to(d->fd, AF_INET, d->port);
        break;
    case SEND_TWO_HALVES:
        send(d->fd, "abcde", 5, 0);
        sleep_ms(50);
        send(d->fd, "fghij", 5, 0);
        break;
    case SIGNAL_THREAD:
        pthread_kill(d->target, SIGUSR1);
        break;
    case SIGNAL_RESTART:
        pthread_kill(d->target, SIGUSR2);
        break;
    case SHUT_READ:
        shutdown(d->fd, SHUT_RD);
        break;
    case SHUT_BOTH:
        shutdown(d->fd, SHUT_RDWR);
        break;
    case DRAIN: {
        static char buf[65536];
        size_t got = 0;
        while (got < d->count) {
            ssize_t n = recv(d->fd, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        d->count = got;
        break;
    }
    }
    return NULL;
}

static void later(struct delayed *d, int ms, enum action action, int fd) {
    d->ms = ms;
    d->action = action;
    d->fd = fd;
    d->target = pthread_self();
    pthread_create(&d->thread, NULL, delayed_main, d);
}

static void join(struct delayed *d) { pthread_join(d->thread, NULL); }

/* ---------- signals ---------- */

static volatile sig_atomic_t sigpipes, sigusr1s, sigusr2s;
static void on_sigpipe(int sig) { (void)sig; sigpipes++; }
static void on_sigusr1(int sig) { (void)sig; sigusr1s++; }
static void on_sigusr2(int sig) { (void)sig; sigusr2s++; }
static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "socket_calls: timed out in section ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, section, strlen(section)) < 0 ||
        write(2, "\n", 1) < 0)
        _exit(3);
    _exit(3);
}

/* restart 0: blocked calls must fail with EINTR; 1: SA_RESTART, they go on waiting. */
static void handle(int sig, void (*fn)(int), int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(sig, &sa, NULL);
}

/* ================================ checks ================================ */

static void check_socket(void) {
    section = "socket";
    int fd;
    static const struct { int family, type, proto; const char *name; } kinds[] = {
        {AF_INET, SOCK_STREAM, 0, "inet stream"},
        {AF_INET, SOCK_DGRAM, 0, "inet dgram"},
        {AF_INET6, SOCK_STREAM, 0, "inet6 stream"},
        {AF_INET6, SOCK_DGRAM, 0, "inet6 dgram"},
        {AF_INET, SOCK_STREAM, IPPROTO_TCP, "inet stream tcp"},
        {AF_INET6, SOCK_DGRAM, IPPROTO_UDP, "inet6 dgram udp"},
        {AF_INET, SOCK_STREAM, IPPROTO_UDP, "inet stream udp"},
        {AF_INET, 99, 0, "inet type 99"},
        {4242, SOCK_STREAM, 0, "family 4242"},
        {AF_UNIX, SOCK_STREAM, 0, "unix stream"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "socket(%s)", kinds[i].name);
        fd = fd_ok(what, socket(kinds[i].family, kinds[i].type, kinds[i].proto));
        if (fd >= 0) {
            say("%s type: %s", what, filetype(fd));
            close(fd);
        }
    }
    fd = fd_ok("socket(inet stream, NONBLOCK|CLOEXEC)",
               socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    show_flags("  flags", fd);
    close(fd);
    fd = fd_ok("socket(inet6 dgram, CLOEXEC)", socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    show_flags("  flags", fd);
    close(fd);
    fd = fd_ok("socket(inet stream)", socket(AF_INET, SOCK_STREAM, 0));
    show_flags("  flags", fd);
    close(fd);
}

static void check_socketpair(void) {
    section = "socketpair";
    int sv[2];
    if (rc("socketpair(unix stream)", socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) == 0) {
        say("type: %s %s", filetype(sv[0]), filetype(sv[1]));
        rc("write", write(sv[0], "hi", 2));
        char buf[8] = {0};
        rc("read", read(sv[1], buf, sizeof buf - 1));
        say("read data: '%s'", buf);
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        rc("getsockname", getsockname(sv[0], (struct sockaddr *)&ss, &len));
        say("family is AF_UNIX: %s", tf(ss.ss_family == AF_UNIX));
        close(sv[0]);
        close(sv[1]);
    }
    if (rc("socketpair(unix dgram, NONBLOCK)",
           socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv)) == 0) {
        show_flags("  flags", sv[0]);
        char b;
        rc("recv empty", recv(sv[1], &b, 1, 0));
        close(sv[0]);
        close(sv[1]);
    }
    rc("socketpair(inet stream)", socketpair(AF_INET, SOCK_STREAM, 0, sv));
    rc("socketpair(inet6 dgram)", socketpair(AF_INET6, SOCK_DGRAM, 0, sv));
}

static void check_bind_listen_connect(int family) {
    section = family == AF_INET ? "tcp4" : "tcp6";
    struct sockaddr_storage ss;
    socklen_t len;
    int l = fd_ok("socket", socket(family, SOCK_STREAM, 0));
    print_name("getsockname unbound", getsockname, l);
    len = loopback(family, &ss, 0);
    rc("bind loopback:0", bind(l, (struct sockaddr *)&ss, len));
    print_name("getsockname bound", getsockname, l);
    uint16_t port = local_port(l);
    rc("bind again", bind(l, (struct sockaddr *)&ss, len));
    int s2 = socket(family, SOCK_STREAM, 0);
    rc("bind short addrlen", bind(s2, (struct sockaddr *)&ss, len - 1));
    close(s2);
    int l2 = socket(family, SOCK_STREAM, 0);
    len = loopback(family, &ss, port);
    rc("bind port in use", bind(l2, (struct sockaddr *)&ss, len));
    close(l2);
    rc("accept before listen", accept(l, NULL, NULL));
    rc("listen", listen(l, 16));
    rc("listen again", listen(l, 32));
    say("SO_ACCEPTCONN: %d", get_int(l, SOL_SOCKET, SO_ACCEPTCONN));
    print_name("getpeername listener", getpeername, l);

    int c = fd_ok("client socket", socket(family, SOCK_STREAM, 0));
    rc("connect", connect_to(c, family, port));
    print_name("client getsockname", getsockname, c);
    print_name("client getpeername", getpeername, c);
    say("client peer port is listener port: %s", tf(remote_port(c) == port));
    rc("connect again", connect_to(c, family, port));

    len = sizeof ss;
    int a = fd_ok("accept", accept(l, (struct sockaddr *)&ss, &len));
    say("accept address: %s", addr_str(&ss, len));
    say("accepted peer port is client port: %s", tf(port_of(&ss) == local_port(c)));
    say("accepted local port is listener port: %s", tf(local_port(a) == port));
    print_name("accepted getpeername", getpeername, a);
    rc("send", send(c, "ping", 4, 0));
    recv_show("recv", a);

    int u = socket(family, SOCK_DGRAM, 0);
    rc("listen udp", listen(u, 1));
    rc("accept udp", accept(u, NULL, NULL));
    close(u);
    int p[2];
    if (pipe(p) == 0) {
        rc("accept pipe", accept(p[0], NULL, NULL));
        rc("listen pipe", listen(p[0], 1));
        rc("connect pipe", connect_to(p[0], family, port));
        rc("bind pipe", bind(p[0], (struct sockaddr *)&ss, sizeof ss));
        print_name("getsockname pipe", getsockname, p[0]);
        close(p[0]);
        close(p[1]);
    }
    rc("accept bad fd", accept(NEVER_OPEN_FD, NULL, NULL));
    rc("connect bad fd", connect_to(NEVER_OPEN_FD, family, port));

    int r = socket(family, SOCK_STREAM, 0);
    rc("connect refused", connect_to(r, family, closed_port(family, SOCK_STREAM)));
    close(r);

    /* AF_UNSPEC dissolves the connection (sends a reset). */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    rc("connect AF_UNSPEC", connect(c, &unspec, sizeof unspec));
    print_name("getpeername after AF_UNSPEC", getpeername, c);
    settle(a);
    char b;
    rc("recv after peer reset", recv(a, &b, 1, 0));
    close(a);
    close(c);
    close(l);
}

static void check_v6_specials(void) {
    section = "tcp6-mapped";
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    say("IPV6_V6ONLY default: %d", get_int(s, IPPROTO_IPV6, IPV6_V6ONLY));
    /* A dual-stack wildcard listener; the client comes over IPv4 loopback. */
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    rc("bind [::]:0", bind(s, (struct sockaddr *)&any, sizeof any));
    rc("listen", listen(s, 4));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    rc("connect 127.0.0.1", connect_to(c, AF_INET, local_port(s)));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int a = fd_ok("accept", accept(s, (struct sockaddr *)&ss, &len));
    say("accept address: %s", addr_str(&ss, len));
    print_name("accepted getsockname", getsockname, a);
    close(a);
    close(c);
    /* An IPv6 client reaching the IPv4 world through a mapped address. */
    int l4 = bound(AF_INET, SOCK_STREAM);
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = htons(local_port(l4))};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
    rc("connect ::ffff:127.0.0.1", connect(c6, (struct sockaddr *)&mapped, sizeof mapped));
    print_name("mapped getsockname", getsockname, c6);
    print_name("mapped getpeername", getpeername, c6);
    close(c6);
    close(l4);
    close(s);
    int v6only = socket(AF_INET6, SOCK_STREAM, 0);
    int one = 1;
    rc("set IPV6_V6ONLY", setsockopt(v6only, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    say("IPV6_V6ONLY: %d", get_int(v6only, IPPROTO_IPV6, IPV6_V6ONLY));
    close(v6only);
}

static void check_accept4(void) {
    section = "accept4";
    int l = bound(AF_INET, SOCK_STREAM);
    int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
    connect_to(c1, AF_INET, local_port(l));
    connect_to(c2, AF_INET, local_port(l));
    int a1 = fd_ok("accept4 NONBLOCK|CLOEXEC",
                   accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
    show_flags("  flags", a1);
    char b;
    rc("  recv (nonblocking)", recv(a1, &b, 1, 0));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int a2 = fd_ok("accept4 0", accept4(l, (struct sockaddr *)&ss, &len, 0));
    say("  address: %s", addr_str(&ss, len));
    show_flags("  flags", a2);
    rc("accept4 bad flags", accept4(l, NULL, NULL, 0x1234));
    /* A short address buffer: truncated, and the length says how long it really is. */
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    connect_to(c4, AF_INET, local_port(l));
    struct sockaddr_in small;
    memset(&small, 0xff, sizeof small);
    len = 4;
    int a4 = fd_ok("accept4, 4-byte address buffer", accept4(l, (struct sockaddr *)&small, &len, 0));
    say("  len %u, family %s, bytes past the buffer untouched %s", (unsigned)len,
        small.sin_family == AF_INET ? "AF_INET" : "other", tf(small.sin_addr.s_addr == 0xffffffffu));
    len = 2;
    rc("  getsockname, 2-byte buffer", getsockname(a4, (struct sockaddr *)&small, &len));
    say("  len %u", (unsigned)len);
    close(a4);
    close(c4);
    close(a1);
    close(a2);
    close(c1);
    close(c2);

    /* A blocking accept returns when a client arrives later (from another thread). */
    int c3 = socket(AF_INET, SOCK_STREAM, 0);
    struct delayed d = {.port = local_port(l)};
    double t0 = now_ms();
    later(&d, SHORT_MS, CONNECT_V4, c3);
    int a3 = fd_ok("blocking accept, client 100 ms later", accept(l, NULL, NULL));
    say("  waited for the client: %s", tf(waited(t0, SHORT_MS)));
    join(&d);
    close(a3);
    close(c3);

    fcntl(l, F_SETFL, O_NONBLOCK);
    rc("accept nonblocking, nothing pending", accept(l, NULL, NULL));
    rc("accept4 nonblocking, nothing pending", accept4(l, NULL, NULL, SOCK_CLOEXEC));
    close(l);
}

static void check_connect_nonblocking(void) {
    section = "connect-nonblocking";
    int l = bound(AF_INET, SOCK_STREAM);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rc("connect", connect_to(c, AF_INET, local_port(l)));
    struct pollfd p = {c, POLLOUT, 0};
    rc("poll POLLOUT", poll(&p, 1, LONG_MS));
    say("revents: %s", events_str(p.revents));
    say("SO_ERROR: %s", errname(get_int(c, SOL_SOCKET, SO_ERROR)));
    rc("connect again", connect_to(c, AF_INET, local_port(l)));
    print_name("getpeername", getpeername, c);
    int a = accept(l, NULL, NULL);
    rc("send", send(c, "nb", 2, 0));
    recv_show("recv", a);
    close(a);
    close(c);

    int r = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rc("connect refused port (v6)", connect_to(r, AF_INET6, closed_port(AF_INET6, SOCK_STREAM)));
    p = (struct pollfd){r, POLLOUT, 0};
    rc("poll POLLOUT", poll(&p, 1, LONG_MS));
    say("revents: %s", events_str(p.revents));
    int err = get_int(r, SOL_SOCKET, SO_ERROR);
    say("SO_ERROR: %s", err ? errname(err) : "0");
    err = get_int(r, SOL_SOCKET, SO_ERROR);
    say("SO_ERROR again: %s", err ? errname(err) : "0");
    close(r);
    close(l);
}

static void check_shutdown(void) {
    section = "shutdown";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    rc("shutdown SHUT_WR", shutdown(c, SHUT_WR));
    char buf[64] = {0};
    settle(a);
    rc("peer read (EOF)", read(a, buf, sizeof buf));
    struct pollfd p = {a, POLLIN | POLLRDHUP, 0};
    rc("peer poll", poll(&p, 1, 0));
    say("peer revents: %s", events_str(p.revents));
    rc("peer write back", write(a, "back", 4));
    settle(c);
    rc("read other direction", read(c, buf, sizeof buf - 1));
    say("data: '%s'", buf);
    p = (struct pollfd){c, POLLOUT, 0};
    poll(&p, 1, 0);
    say("shut side revents (POLLOUT): %s", events_str(p.revents));
    int before = sigpipes;
    rc("write after SHUT_WR", write(c, "x", 1));
    say("SIGPIPE raised: %s", tf(sigpipes == before + 1));
    before = sigpipes;
    rc("send MSG_NOSIGNAL after SHUT_WR", send(c, "x", 1, MSG_NOSIGNAL));
    say("SIGPIPE raised: %s", tf(sigpipes != before));
    rc("shutdown bad how", shutdown(c, 7));
    rc("peer shutdown SHUT_RDWR", shutdown(a, SHUT_RDWR));
    settle(c);
    rc("read after peer SHUT_RDWR", read(c, buf, sizeof buf));
    close(c);
    close(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    rc("shutdown unconnected tcp", shutdown(s, SHUT_RDWR));
    close(s);
    s = socket(AF_INET6, SOCK_DGRAM, 0);
    rc("shutdown unconnected udp", shutdown(s, SHUT_RD));
    close(s);
    int pp[2];
    if (pipe(pp) == 0) {
        rc("shutdown pipe", shutdown(pp[0], SHUT_RD));
        close(pp[0]);
        close(pp[1]);
    }
}

static void check_close(void) {
    section = "close";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int p[2];
    if (pipe(p) < 0)
        return;
    /* Three consecutive numbers: a socket, a socket and a pipe. */
    say("dup2 to 300..302: %s", tf(dup2(a, 300) == 300 && dup2(u, 301) == 301 &&
                                     dup2(p[0], 302) == 302));
    close(a);
    close(u);
    close(p[0]);
    rc("close_range 300-302 CLOEXEC", close_range(300, 302, CLOSE_RANGE_CLOEXEC));
    for (int fd = 300; fd <= 302; fd++) {
        int fl = fcntl(fd, F_GETFD);
        say("fd %d cloexec: %s", fd - 300, fl < 0 ? errname(errno) : tf(fl & FD_CLOEXEC));
    }
    rc("send on 300 still works", send(300, "cr", 2, 0));
    recv_show("peer recv", c);
    rc("close_range 300-302", close_range(300, 302, 0));
    for (int fd = 300; fd <= 302; fd++) {
        int fl = fcntl(fd, F_GETFD);
        say("fd %d after close_range: %s", fd - 300, fl < 0 ? errname(errno) : "open");
    }
    char buf[8];
    settle(c);
    rc("peer read after close_range (EOF)", read(c, buf, sizeof buf));
    rc("write to pipe whose read end was closed", write(p[1], "x", 1));
    rc("close_range first > last", close_range(5, 3, 0));
    rc("close", close(c));
    rc("close again", close(c));
    rc("close -1", close(-1));
    close(p[1]);

    /* close() of a socket with unread data resets the connection. */
    tcp_pair(AF_INET, &c, &a);
    send(c, "unread", 6, 0);
    settle(a);
    rc("close with unread data", close(a));
    settle(c);
    rc("peer recv after reset", recv(c, buf, sizeof buf, 0));
    close(c);
}

static void check_read_write(void) {
    section = "read-write";
    int c, a;
    tcp_pair(AF_INET6, &c, &a);
    char buf[256] = {0};
    rc("write", write(c, "hello", 5));
    settle(a);
    rc("read", read(a, buf, sizeof buf - 1));
    say("data: '%s'", buf);
    rc("read 0 bytes", read(a, buf, 0));
    struct iovec out[3] = {{"one-", 4}, {"two-", 4}, {"three", 5}};
    rc("writev 3", writev(c, out, 3));
    char x[4] = {0}, y[64] = {0};
    struct iovec in[2] = {{x, sizeof x}, {y, sizeof y - 1}};
    size_t total = 0;
    settle(a);
    while (total < 13) {
        ssize_t n = readv(a, in, 2);
        if (n <= 0) {
            rc("readv", n);
            break;
        }
        total += (size_t)n;
        /* Continue where the data ended (the first buffer fills first). */
        size_t off = total;
        if (off < sizeof x) {
            in[0].iov_base = x + off;
            in[0].iov_len = sizeof x - off;
        } else {
            in[0].iov_len = 0;
            in[1].iov_base = y + (off - sizeof x);
            in[1].iov_len = sizeof y - 1 - (off - sizeof x);
        }
    }
    say("readv total: %zu '%.4s' '%s'", total, x, y);
    rc("write bad fd", write(NEVER_OPEN_FD, "x", 1));
    rc("read bad fd", read(NEVER_OPEN_FD, buf, 1));

    rc("send", send(a, "send-recv", 9, 0));
    recv_show("recv", c);
    rc("sendto (connected, no address)", sendto(a, "sendto", 6, 0, NULL, 0));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    settle(c);
    memset(buf, 0, sizeof buf);
    rc("recvfrom", recvfrom(c, buf, sizeof buf - 1, 0, (struct sockaddr *)&ss, &len));
    say("recvfrom data '%s' addrlen %u", buf, (unsigned)len);
    struct iovec mo[2] = {{"msg-", 4}, {"parts", 5}};
    struct msghdr mh = {.msg_iov = mo, .msg_iovlen = 2};
    rc("sendmsg", sendmsg(c, &mh, 0));
    memset(buf, 0, sizeof buf);
    struct iovec mi = {buf, sizeof buf - 1};
    struct msghdr rh = {.msg_name = &ss, .msg_namelen = sizeof ss, .msg_iov = &mi, .msg_iovlen = 1};
    settle(a);
    rc("recvmsg", recvmsg(a, &rh, 0));
    say("recvmsg data '%s' namelen %u flags 0x%x", buf, (unsigned)rh.msg_namelen, rh.msg_flags);

    /* Fortified entry points. */
    rc("send for __read_chk", send(c, "chk1", 4, 0));
    settle(a);
    memset(buf, 0, sizeof buf);
    rc("__read_chk", __read_chk(a, buf, 4, sizeof buf));
    say("data: '%s'", buf);
    rc("send for __recv_chk", send(c, "chk2", 4, 0));
    settle(a);
    memset(buf, 0, sizeof buf);
    rc("__recv_chk", __recv_chk(a, buf, 4, sizeof buf, 0));
    say("data: '%s'", buf);
    rc("send for __recvfrom_chk", send(c, "chk3", 4, 0));
    settle(a);
    memset(buf, 0, sizeof buf);
    len = sizeof ss;
    rc("__recvfrom_chk", __recvfrom_chk(a, buf, 4, sizeof buf, 0, (struct sockaddr *)&ss, &len));
    say("data: '%s'", buf);

    int p1[2], p2[2];
    if (pipe(p1) == 0 && pipe(p2) == 0) {
        if (write(p1[1], "splice", 6) != 6)
            say("pipe write failed");
        rc("splice pipe to pipe (host fds)", splice(p1[0], NULL, p2[1], NULL, 6, 0));
        memset(buf, 0, sizeof buf);
        rc("  read", read(p2[0], buf, sizeof buf - 1));
        say("  data '%s'", buf);
        close(p1[0]);
        close(p1[1]);
        close(p2[0]);
        close(p2[1]);
    }

    section = "pread-pwrite";
    rc("pread on socket", pread(a, buf, 4, 0));
    rc("pwrite on socket", pwrite(c, "x", 1, 0));
    rc("pread64 on socket", pread64(a, buf, 4, 0));
    rc("pwrite64 on socket", pwrite64(c, "x", 1, 0));
    close(c);
    close(a);
}

static void check_udp(int family) {
    section = family == AF_INET ? "udp4" : "udp6";
    int u1 = bound(family, SOCK_DGRAM), u2 = bound(family, SOCK_DGRAM);
    struct sockaddr_storage to, from;
    socklen_t tolen = loopback(family, &to, local_port(u2)), fromlen = sizeof from;
    char buf[256] = {0};
    rc("sendto", sendto(u1, "datagram-1", 10, 0, (struct sockaddr *)&to, tolen));
    settle(u2);
    rc("recvfrom", recvfrom(u2, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen));
    say("from %s, sender's port: %s, data '%s'", addr_str(&from, fromlen),
        tf(port_of(&from) == local_port(u1)), buf);

    struct iovec mo[2] = {{"part1-", 6}, {"part2", 5}};
    struct msghdr mh = {.msg_name = &to, .msg_namelen = tolen, .msg_iov = mo, .msg_iovlen = 2};
    rc("sendmsg", sendmsg(u1, &mh, 0));
    memset(buf, 0, sizeof buf);
    struct iovec mi = {buf, sizeof buf - 1};
    struct msghdr rh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &mi,
                        .msg_iovlen = 1};
    settle(u2);
    rc("recvmsg", recvmsg(u2, &rh, 0));
    say("recvmsg '%s' flags 0x%x from %s", buf, rh.msg_flags, addr_str(&from, rh.msg_namelen));

    rc("sendto 20 bytes", sendto(u1, "twenty-bytes-of-data", 20, 0, (struct sockaddr *)&to, tolen));
    memset(buf, 0, sizeof buf);
    mi.iov_len = 8;
    rh.msg_namelen = sizeof from;
    settle(u2);
    rc("recvmsg into 8 bytes", recvmsg(u2, &rh, 0));
    say("truncated: %s, data '%s'", tf(rh.msg_flags & MSG_TRUNC), buf);
    sendto(u1, "twenty-bytes-of-data", 20, 0, (struct sockaddr *)&to, tolen);
    settle(u2);
    rc("recv 4 bytes with MSG_TRUNC (real length)", recv(u2, buf, 4, MSG_TRUNC));
    rc("sendto empty datagram", sendto(u1, "", 0, 0, (struct sockaddr *)&to, tolen));
    settle(u2);
    rc("recv empty datagram", recv(u2, buf, sizeof buf, 0));
    static char big[70000];
    rc("sendto 70000 bytes", sendto(u1, big, sizeof big, 0, (struct sockaddr *)&to, tolen));
    rc("send unconnected, no address", send(u1, "x", 1, 0));

    struct mmsghdr mm[3];
    struct iovec mv[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        mm[i].msg_hdr.msg_name = &to;
        mm[i].msg_hdr.msg_namelen = tolen;
        mm[i].msg_hdr.msg_iov = &mv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    rc("sendmmsg 3", sendmmsg(u1, mm, 3, 0));
    say("sent lengths: %u %u %u", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    char rb[3][16];
    struct iovec rv[3];
    memset(mm, 0, sizeof mm);
    memset(rb, 0, sizeof rb);
    for (int i = 0; i < 3; i++) {
        rv[i] = (struct iovec){rb[i], sizeof rb[i] - 1};
        mm[i].msg_hdr.msg_iov = &rv[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    /* Without MSG_WAITFORONE and a timeout, recvmmsg waits for all three. */
    rc("recvmmsg 3", recvmmsg(u2, mm, 3, 0, NULL));
    say("received: %u '%s' %u '%s' %u '%s'", mm[0].msg_len, rb[0], mm[1].msg_len, rb[1],
        mm[2].msg_len, rb[2]);
    rc("recvmmsg DONTWAIT, empty", recvmmsg(u2, mm, 3, MSG_DONTWAIT, NULL));

    /* Connected UDP. */
    rc("connect", connect(u1, (struct sockaddr *)&to, tolen));
    print_name("getpeername", getpeername, u1);
    rc("send connected", send(u1, "conn", 4, 0));
    recv_show("recv", u2);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    rc("connect AF_UNSPEC", connect(u1, &unspec, sizeof unspec));
    print_name("getpeername after AF_UNSPEC", getpeername, u1);

    /* ICMP port unreachable comes back as ECONNREFUSED on a connected socket. */
    int u3 = socket(family, SOCK_DGRAM, 0);
    struct timeval tv = {3, 0};
    setsockopt(u3, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    rc("connect to closed port", connect_to(u3, family, closed_port(family, SOCK_DGRAM)));
    rc("send", send(u3, "x", 1, 0));
    rc("recv (port unreachable)", recv(u3, buf, sizeof buf, 0));
    close(u3);
    close(u1);
    close(u2);
}

static void check_sockopts(void) {
    section = "sockopt";
    int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET6, SOCK_DGRAM, 0);
    int one = 1;
    static const struct { int level, opt; const char *name; } bools[] = {
        {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"},
        {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT"},
        {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"},
        {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        say("%s default: %d", bools[i].name, get_int(t, bools[i].level, bools[i].opt));
        rc("  set 1", setsockopt(t, bools[i].level, bools[i].opt, &one, sizeof one));
        say("  now: %d", get_int(t, bools[i].level, bools[i].opt));
    }
    int size = 65536;
    rc("set SO_RCVBUF 65536", setsockopt(t, SOL_SOCKET, SO_RCVBUF, &size, sizeof size));
    say("SO_RCVBUF >= 65536: %s", tf(get_int(t, SOL_SOCKET, SO_RCVBUF) >= 65536));
    rc("set SO_SNDBUF 65536", setsockopt(t, SOL_SOCKET, SO_SNDBUF, &size, sizeof size));
    say("SO_SNDBUF >= 65536: %s", tf(get_int(t, SOL_SOCKET, SO_SNDBUF) >= 65536));
    int type = get_int(t, SOL_SOCKET, SO_TYPE);
    say("SO_TYPE tcp: %s", type == SOCK_STREAM ? "SOCK_STREAM" : "other");
    type = get_int(u, SOL_SOCKET, SO_TYPE);
    say("SO_TYPE udp: %s", type == SOCK_DGRAM ? "SOCK_DGRAM" : "other");
    say("SO_DOMAIN: %s %s", get_int(t, SOL_SOCKET, SO_DOMAIN) == AF_INET ? "AF_INET" : "other",
        get_int(u, SOL_SOCKET, SO_DOMAIN) == AF_INET6 ? "AF_INET6" : "other");
    say("SO_PROTOCOL: %d %d", get_int(t, SOL_SOCKET, SO_PROTOCOL),
        get_int(u, SOL_SOCKET, SO_PROTOCOL));
    say("SO_ERROR: %d", get_int(t, SOL_SOCKET, SO_ERROR));
    say("SO_ACCEPTCONN: %d", get_int(t, SOL_SOCKET, SO_ACCEPTCONN));
    struct linger lg = {7, 7};
    socklen_t len = sizeof lg;
    rc("get SO_LINGER", getsockopt(t, SOL_SOCKET, SO_LINGER, &lg, &len));
    say("  onoff %d linger %d len %u", lg.l_onoff, lg.l_linger, (unsigned)len);
    struct timeval tv = {0, 250000}, got = {9, 9};
    rc("set SO_RCVTIMEO 250ms", setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    len = sizeof got;
    rc("get SO_RCVTIMEO", getsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &got, &len));
    /* The kernel rounds to its tick (HZ may differ): print only that it is about 250ms. */
    long us = (long)got.tv_sec * 1000000L + got.tv_usec;
    say("  about 250ms: %s, len %u", tf(us >= 250000 && us <= 300000), (unsigned)len);
    rc("set SO_SNDTIMEO 250ms", setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    len = sizeof got;
    rc("get SO_SNDTIMEO", getsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &got, &len));
    us = (long)got.tv_sec * 1000000L + got.tv_usec;
    say("  about 250ms: %s", tf(us >= 250000 && us <= 300000));
    long wide = -1;
    len = sizeof wide;
    rc("get SO_TYPE into 8 bytes", getsockopt(t, SOL_SOCKET, SO_TYPE, &wide, &len));
    say("  optlen now %u", (unsigned)len);
    int v;
    len = sizeof v;
    rc("getsockopt unknown level", getsockopt(t, 9999, 1, &v, &len));
    rc("getsockopt unknown SOL_SOCKET option", getsockopt(t, SOL_SOCKET, 9999, &v, &len));
    rc("setsockopt optlen 0", setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, 0));
    int p[2];
    if (pipe(p) == 0) {
        len = sizeof v;
        rc("getsockopt pipe", getsockopt(p[0], SOL_SOCKET, SO_TYPE, &v, &len));
        rc("setsockopt pipe", setsockopt(p[0], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
        close(p[0]);
        close(p[1]);
    }
    rc("setsockopt bad fd", setsockopt(NEVER_OPEN_FD, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    close(t);
    close(u);

    /* What the reuse options allow. */
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t sl = loopback(AF_INET, &ss, 0);
    setsockopt(a, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(b, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    rc("udp SO_REUSEPORT bind 1", bind(a, (struct sockaddr *)&ss, sl));
    sl = loopback(AF_INET, &ss, local_port(a));
    rc("udp SO_REUSEPORT bind 2, same port", bind(b, (struct sockaddr *)&ss, sl));
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    rc("udp bind 3 without SO_REUSEPORT", bind(c, (struct sockaddr *)&ss, sl));
    close(a);
    close(b);
    close(c);
    a = socket(AF_INET, SOCK_STREAM, 0);
    b = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(a, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(b, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sl = loopback(AF_INET, &ss, 0);
    rc("tcp SO_REUSEADDR bind 1", bind(a, (struct sockaddr *)&ss, sl));
    sl = loopback(AF_INET, &ss, local_port(a));
    rc("tcp SO_REUSEADDR bind 2, same port", bind(b, (struct sockaddr *)&ss, sl));
    rc("listen 1", listen(a, 4));
    rc("listen 2", listen(b, 4));
    close(a);
    close(b);
}

static void check_fcntl(void) {
    section = "fcntl";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    int fl = fcntl(c, F_GETFL);
    say("F_GETFL: 0x%x", fl);
    rc("F_SETFL O_NONBLOCK", fcntl(c, F_SETFL, fl | O_NONBLOCK));
    say("F_GETFL: 0x%x", fcntl(c, F_GETFL));
    char b;
    rc("recv", recv(c, &b, 1, 0));
    rc("F_SETFL back", fcntl(c, F_SETFL, fl));
    say("F_GETFL: 0x%x", fcntl(c, F_GETFL));
    rc("fcntl64 F_GETFL", fcntl64(c, F_GETFL));
    rc("F_GETFD", fcntl(c, F_GETFD));
    rc("F_SETFD FD_CLOEXEC", fcntl(c, F_SETFD, FD_CLOEXEC));
    rc("F_GETFD", fcntl(c, F_GETFD));
    rc("fcntl64 F_SETFD 0", fcntl64(c, F_SETFD, 0));
    rc("F_GETFD", fcntl(c, F_GETFD));

    fcntl(c, F_SETFD, FD_CLOEXEC);
    int d = fcntl(c, F_DUPFD, 100);
    say("F_DUPFD 100: %s", d < 0 ? errname(errno) : tf(d >= 100));
    say("  dup cloexec: %s", tf(fcntl(d, F_GETFD) & FD_CLOEXEC));
    /* File status flags belong to the open file, shared by its duplicates. */
    fcntl(c, F_SETFL, fl | O_NONBLOCK);
    say("  O_NONBLOCK set on original shows on dup: %s", tf(fcntl(d, F_GETFL) & O_NONBLOCK));
    fcntl(d, F_SETFL, fl);
    say("  cleared on dup shows on original: %s", tf(!(fcntl(c, F_GETFL) & O_NONBLOCK)));
    rc("  send via dup", send(d, "dupfd", 5, 0));
    recv_show("  peer recv", a);
    int e = fcntl64(c, F_DUPFD_CLOEXEC, 100);
    say("F_DUPFD_CLOEXEC 100: %s", e < 0 ? errname(errno) : tf(e >= 100 && e != d));
    say("  dup cloexec: %s", tf(fcntl(e, F_GETFD) & FD_CLOEXEC));
    rc("  send via cloexec dup", send(e, "dupfd-cloexec", 13, 0));
    recv_show("  peer recv", a);
    close(d);
    close(e);
    rc("send via original after closing dups", send(c, "orig", 4, 0));
    recv_show("  peer recv", a);
    rc("F_GETFL bad fd", fcntl(NEVER_OPEN_FD, F_GETFL));
    rc("F_DUPFD bad fd", fcntl(NEVER_OPEN_FD, F_DUPFD, 0));
    close(c);
    close(a);
}

static void check_ioctl(void) {
    section = "ioctl";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    int v = 1;
    rc("FIONBIO 1", ioctl(c, FIONBIO, &v));
    say("  O_NONBLOCK: %s", tf(fcntl(c, F_GETFL) & O_NONBLOCK));
    char b;
    rc("  recv", recv(c, &b, 1, 0));
    v = 0;
    rc("FIONBIO 0", ioctl(c, FIONBIO, &v));
    say("  O_NONBLOCK: %s", tf(fcntl(c, F_GETFL) & O_NONBLOCK));
    v = -1;
    rc("FIONREAD empty", ioctl(c, FIONREAD, &v));
    say("  value: %d", v);
    send(a, "seven!!", 7, 0);
    settle(c);
    rc("FIONREAD", ioctl(c, FIONREAD, &v));
    say("  value: %d", v);
    rc("SIOCINQ", ioctl(c, SIOCINQ, &v));
    say("  value: %d", v);
    v = -1;
    rc("SIOCOUTQ idle", ioctl(c, SIOCOUTQ, &v));
    say("  value: %d", v);
    v = -1;
    rc("SIOCOUTQNSD idle", ioctl(c, SIOCOUTQNSD, &v));
    say("  value: %d", v);
    rc("SIOCATMARK", ioctl(c, SIOCATMARK, &v));
    say("  value: %d", v);
    /* Data the peer does not read stays queued on the sender. */
    fcntl(a, F_SETFL, O_NONBLOCK);
    fill_sndbuf(a);
    v = -1;
    rc("SIOCOUTQ with a full send buffer", ioctl(a, SIOCOUTQ, &v));
    say("  value > 0: %s", tf(v > 0));
    v = -1;
    rc("SIOCOUTQNSD with a full send buffer", ioctl(a, SIOCOUTQNSD, &v));
    say("  value > 0: %s", tf(v > 0));
    int l = bound(AF_INET, SOCK_STREAM);
    rc("FIONREAD listener", ioctl(l, FIONREAD, &v));
    close(l);
    int u1 = bound(AF_INET, SOCK_DGRAM), u2 = bound(AF_INET, SOCK_DGRAM);
    struct sockaddr_storage to;
    socklen_t tl = loopback(AF_INET, &to, local_port(u2));
    sendto(u1, "12345", 5, 0, (struct sockaddr *)&to, tl);
    settle(u2);
    rc("FIONREAD udp", ioctl(u2, FIONREAD, &v));
    say("  value: %d", v);
    close(u1);
    close(u2);
    int p[2];
    if (pipe(p) == 0) {
        if (write(p[1], "abc", 3) == 3) {
            rc("FIONREAD pipe", ioctl(p[0], FIONREAD, &v));
            say("  value: %d", v);
        }
        close(p[0]);
        close(p[1]);
    }
    rc("FIONREAD bad fd", ioctl(NEVER_OPEN_FD, FIONREAD, &v));
    close(c);
    close(a);
}

static void check_dup(void) {
    section = "dup";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    int d = fd_ok("dup", dup(c));
    rc("close original", close(c));
    rc("send via dup", send(d, "via-dup", 7, 0));
    recv_show("peer recv", a);
    print_name("getpeername via dup", getpeername, d);
    int d2 = dup(d);
    rc("close a second dup", close(d2));
    struct pollfd pa = {a, POLLIN, 0};
    say("peer sees EOF after closing one of two refs: %s", tf(poll(&pa, 1, SHORT_MS) != 0));

    /* A pipe over the socket's number, and the socket back. */
    int saved = dup(d);
    int p[2];
    if (pipe(p) < 0)
        return;
    say("dup2 pipe over socket returns target: %s", tf(dup2(p[0], d) == d));
    say("  type: %s", filetype(d));
    print_name("  getsockname", getsockname, d);
    if (write(p[1], "pipe", 4) == 4) {
        char buf[8] = {0};
        rc("  read through it", read(d, buf, sizeof buf - 1));
        say("  data: '%s'", buf);
    }
    say("peer still connected: %s", tf(poll(&pa, 1, 0) == 0));
    say("dup2 socket back returns target: %s", tf(dup2(saved, d) == d));
    say("  type: %s", filetype(d));
    rc("  send", send(d, "back", 4, 0));
    recv_show("  peer recv", a);
    rc("close saved", close(saved));
    say("dup2 onto itself returns it: %s", tf(dup2(d, d) == d));
    rc("  send", send(d, "self", 4, 0));
    recv_show("  peer recv", a);
    rc("dup2 bad fd", dup2(NEVER_OPEN_FD, p[0]));
    rc("dup3 onto itself", dup3(d, d, 0));
    rc("dup3 bad flags", dup3(d, p[0], 0x1234));
    say("dup3 O_CLOEXEC over the pipe's read end: %s", tf(dup3(d, p[0], O_CLOEXEC) == p[0]));
    say("  type: %s, cloexec: %s", filetype(p[0]), tf(fcntl(p[0], F_GETFD) & FD_CLOEXEC));
    rc("  write to pipe without reader", write(p[1], "x", 1));
    rc("  send via dup3", send(p[0], "dup3", 4, 0));
    recv_show("  peer recv", a);
    close(p[1]);
    close(p[0]);
    say("peer still connected: %s", tf(poll(&pa, 1, 0) == 0));
    rc("close last ref", close(d));
    char b;
    settle(a);
    rc("peer recv (EOF)", recv(a, &b, 1, 0));
    close(a);

    /* dup2 of one socket over another closes the other's connection. */
    int c1, a1, c2, a2;
    tcp_pair(AF_INET, &c1, &a1);
    tcp_pair(AF_INET6, &c2, &a2);
    say("dup2 socket over socket returns target: %s", tf(dup2(c1, c2) == c2));
    settle(a2);
    rc("  replaced connection's peer recv (EOF)", recv(a2, &b, 1, 0));
    rc("  send via target", send(c2, "over", 4, 0));
    recv_show("  first connection's peer recv", a1);
    print_name("  target getsockname", getsockname, c2);
    close(c1);
    close(c2);
    close(a1);
    close(a2);
}

#define SENDFILE_BYTES 300000
#define BLOCKING_BYTES (8 << 20)

static uint8_t pattern(size_t i) { return (uint8_t)(i * 7 + i / 251 + 13); }

struct receiver {
    pthread_t thread;
    int fd;
    size_t want, got;
    int match;
};

static void *receiver_main(void *arg) {
    struct receiver *r = arg;
    char buf[8192];
    r->match = 1;
    while (r->got < r->want) {
        size_t want = r->want - r->got < sizeof buf ? r->want - r->got : sizeof buf;
        ssize_t n = recv(r->fd, buf, want, 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if ((uint8_t)buf[i] != pattern(r->got + (size_t)i))
                r->match = 0;
        r->got += (size_t)n;
    }
    return NULL;
}

static void check_msg_flags(void) {
    section = "msg-flags";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    char buf[64] = {0};
    send(a, "peekaboo", 8, 0);
    settle(c);
    rc("recv MSG_PEEK 4", recv(c, buf, 4, MSG_PEEK));
    say("  data '%s'", buf);
    memset(buf, 0, sizeof buf);
    rc("recv after peek", recv(c, buf, sizeof buf - 1, 0));
    say("  data '%s'", buf);
    rc("recv MSG_DONTWAIT empty", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    rc("send MSG_DONTWAIT", send(c, "dw", 2, MSG_DONTWAIT));
    recv_show("  peer recv", a);
    struct delayed d;
    later(&d, 20, SEND_TWO_HALVES, a);
    memset(buf, 0, sizeof buf);
    rc("recv MSG_WAITALL 10 (sent 5 + 5 later)", recv(c, buf, 10, MSG_WAITALL));
    say("  data '%s'", buf);
    join(&d);
    send(a, "xyzzy", 5, 0);
    settle(c);
    rc("recv MSG_TRUNC 3 (tcp discards)", recv(c, NULL, 3, MSG_TRUNC));
    memset(buf, 0, sizeof buf);
    rc("recv rest", recv(c, buf, sizeof buf - 1, 0));
    say("  data '%s'", buf);

    section = "timeouts";
    struct timeval tv = {0, SHORT_MS * 1000};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = now_ms();
    rc("recv with SO_RCVTIMEO 100ms", recv(c, buf, sizeof buf, 0));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    t0 = now_ms();
    rc("read with SO_RCVTIMEO 100ms", read(c, buf, sizeof buf));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    int l = bound(AF_INET6, SOCK_STREAM);
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t0 = now_ms();
    rc("accept with SO_RCVTIMEO 100ms", accept(l, NULL, NULL));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    close(l);

    section = "eintr";
    /* A signal (handler without SA_RESTART) interrupts a blocked receive. */
    tv = (struct timeval){3, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int before = sigusr1s;
    later(&d, SHORT_MS, SIGNAL_THREAD, -1);
    t0 = now_ms();
    rc("blocking recv, signal after 100ms", recv(c, buf, sizeof buf, 0));
    say("  handler ran: %s, returned before the 3s timeout: %s", tf(sigusr1s == before + 1),
        tf(now_ms() - t0 < 2500));
    join(&d);
    tv = (struct timeval){0, 0}; /* with a timeout set, SA_RESTART does not apply (signal(7)) */
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    before = sigusr2s;
    struct delayed d2;
    later(&d, SHORT_MS, SIGNAL_RESTART, -1);
    later(&d2, 2 * SHORT_MS + 50, SEND_BYTE, a);
    t0 = now_ms();
    rc("blocking recv, SA_RESTART signal at 100ms, data at 250ms", recv(c, buf, sizeof buf, 0));
    say("  handler ran: %s, waited for the data: %s", tf(sigusr2s == before + 1),
        tf(waited(t0, 2 * SHORT_MS + 50)));
    join(&d);
    join(&d2);
    l = bound(AF_INET, SOCK_STREAM);
    before = sigusr1s;
    later(&d, SHORT_MS, SIGNAL_THREAD, -1);
    rc("blocking accept, signal at 100ms", accept(l, NULL, NULL));
    say("  handler ran: %s", tf(sigusr1s == before + 1));
    join(&d);
    close(l);
    close(c);
    close(a);
}

/* Calls that block until the peer or another thread acts. */
static void check_blocking(void) {
    section = "blocking";
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    struct receiver r = {.fd = a, .want = BLOCKING_BYTES};
    pthread_create(&r.thread, NULL, receiver_main, &r);
    static uint8_t data[BLOCKING_BYTES];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    rc("blocking send of 8 MiB, peer reading", send(c, data, sizeof data, 0));
    pthread_join(r.thread, NULL);
    say("  receiver got %zu bytes, content matches: %s", r.got, tf(r.match));

    /* Nobody reads: SO_SNDTIMEO ends the send with what it queued, then with EAGAIN. */
    struct timeval tv = {0, SHORT_MS * 1000};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    double t0 = now_ms();
    ssize_t n = send(c, data, sizeof data, 0);
    say("send of 8 MiB, nobody reading, SO_SNDTIMEO 100ms: partial %s, waited>=timeout %s",
        tf(n > 0 && n < (ssize_t)sizeof data), tf(waited(t0, SHORT_MS)));
    /* A peer that does not read still lets some data in now and then (its window reopens
     * when the kernel compacts its receive queue; zero-window probes find it), so a send may
     * legitimately find room again: up to 5 fills, the first send that finds none shown. */
    ssize_t full = 0;
    for (int attempt = 0; attempt < 5 && full >= 0; attempt++) {
        fcntl(c, F_SETFL, O_NONBLOCK);
        fill_sndbuf(c);
        fcntl(c, F_SETFL, 0);
        t0 = now_ms();
        full = send(c, data, 65536, 0);
    }
    rc("send with the buffer full", full);
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    close(c);
    close(a);

    /* shutdown from another thread wakes a blocked receive, and a blocked accept. */
    tcp_pair(AF_INET6, &c, &a);
    struct delayed d;
    later(&d, SHORT_MS, SHUT_READ, c);
    char b;
    t0 = now_ms();
    rc("blocked recv, SHUT_RD from another thread at 100ms", recv(c, &b, 1, 0));
    say("  waited: %s", tf(waited(t0, SHORT_MS)));
    join(&d);
    close(c);
    close(a);
    int l = bound(AF_INET, SOCK_STREAM);
    later(&d, SHORT_MS, SHUT_BOTH, l);
    t0 = now_ms();
    rc("blocked accept, SHUT_RDWR from another thread at 100ms", accept(l, NULL, NULL));
    say("  waited: %s", tf(waited(t0, SHORT_MS)));
    join(&d);
    close(l);
}

static void check_fstat(void) {
    section = "fstat";
    int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET6, SOCK_DGRAM, 0);
    struct stat st;
    rc("fstat tcp", fstat(t, &st));
    say("  S_ISSOCK: %s", tf(S_ISSOCK(st.st_mode)));
    struct stat64 st64;
    rc("fstat64 udp6", fstat64(u, &st64));
    say("  S_ISSOCK: %s", tf(S_ISSOCK(st64.st_mode)));
    int d = dup(t);
    rc("fstat dup", fstat(d, &st));
    say("  S_ISSOCK: %s", tf(S_ISSOCK(st.st_mode)));
    rc("fstat bad fd", fstat(NEVER_OPEN_FD, &st));
    close(d);
    close(t);
    close(u);
}

static void check_sendfile(void) {
    section = "sendfile";
    char path[] = "/tmp/socket_calls.XXXXXX";
    int f = mkstemp(path);
    if (f < 0) {
        say("mkstemp: %s", errname(errno));
        return;
    }
    unlink(path);
    static uint8_t data[SENDFILE_BYTES];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = pattern(i);
    if (write(f, data, sizeof data) != (ssize_t)sizeof data)
        say("write file failed");
    lseek(f, 0, SEEK_SET);
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    struct receiver r = {.fd = a, .want = SENDFILE_BYTES};
    pthread_create(&r.thread, NULL, receiver_main, &r);
    off_t off = 0;
    size_t sent = 0;
    int calls_ok = 1;
    /* sendfile with an offset: the file position does not move. */
    while (sent < SENDFILE_BYTES / 2) {
        ssize_t n = sendfile(c, f, &off, SENDFILE_BYTES / 2 - sent);
        if (n <= 0) {
            rc("sendfile", n);
            calls_ok = 0;
            break;
        }
        sent += (size_t)n;
    }
    say("sendfile with offset: sent %zu, offset now %lld, file position %lld", sent,
        (long long)off, (long long)lseek(f, 0, SEEK_CUR));
    /* sendfile64 without an offset: it reads from (and moves) the file position. */
    lseek(f, off, SEEK_SET);
    while (calls_ok && sent < SENDFILE_BYTES) {
        ssize_t n = sendfile64(c, f, NULL, SENDFILE_BYTES - sent);
        if (n <= 0) {
            rc("sendfile64", n);
            break;
        }
        sent += (size_t)n;
    }
    say("sendfile64 without offset: total sent %zu, file position %lld", sent,
        (long long)lseek(f, 0, SEEK_CUR));
    off = SENDFILE_BYTES - 10;
    rc("sendfile past the end of the file", sendfile(c, f, &off, 100));
    say("  offset now at the end: %s", tf(off == SENDFILE_BYTES));
    rc("sendfile at the end of the file", sendfile(c, f, &off, 100));
    pthread_join(r.thread, NULL);
    say("receiver got %zu bytes, content matches: %s", r.got, tf(r.match));
    rc("sendfile to a bad fd", sendfile(NEVER_OPEN_FD, f, NULL, 10));
    close(c);
    close(a);
    close(f);
}

/* ---------- readiness ---------- */

/* The fds the readiness checks mix: two TCP connections (client ends watched), a pipe, an
 * eventfd and a timerfd, all host fds but the sockets. */
struct world {
    int s, s_peer, t, t_peer, pr, pw, ev, tm;
};

static struct world make_world(void) {
    struct world w;
    tcp_pair(AF_INET, &w.s, &w.s_peer);
    tcp_pair(AF_INET6, &w.t, &w.t_peer);
    int p[2];
    if (pipe2(p, O_NONBLOCK) < 0)
        p[0] = p[1] = -1;
    w.pr = p[0];
    w.pw = p[1];
    w.ev = eventfd(0, EFD_NONBLOCK);
    w.tm = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    fcntl(w.s, F_SETFL, O_NONBLOCK);
    fcntl(w.t, F_SETFL, O_NONBLOCK);
    return w;
}

static void drain_world(struct world *w) {
    drain(w->s);
    drain(w->t);
    drain(w->pr);
    drain(w->ev);
    drain(w->tm);
}

static void free_world(struct world *w) {
    int fds[] = {w->s, w->s_peer, w->t, w->t_peer, w->pr, w->pw, w->ev, w->tm};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

static void arm_timer(int tm, int ms) {
    struct itimerspec its = {{0, 0}, {ms / 1000, (long)(ms % 1000) * 1000000L}};
    timerfd_settime(tm, 0, &its, NULL);
}

static void eventfd_bump(int ev) {
    uint64_t one = 1;
    if (write(ev, &one, sizeof one) != sizeof one)
        say("eventfd write failed");
}

static void pipe_bump(int pw) {
    if (write(pw, "p", 1) != 1)
        say("pipe write failed");
}

/* Polls `n` fds for POLLIN and prints rc, revents and (for timeouts) whether it waited. */
static void poll_case(const char *what, const int *fds, int n, int timeout) {
    struct pollfd p[8];
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){fds[i], POLLIN, 0};
    double t0 = now_ms();
    int r = poll(p, (nfds_t)n, timeout);
    double dt = now_ms() - t0;
    char line[256] = "";
    for (int i = 0; i < n; i++) {
        strcat(line, i ? " " : "");
        strcat(line, events_str(p[i].revents));
    }
    if (r < 0)
        say("%s: -1 %s", what, errname(errno));
    else if (r == 0)
        say("%s: 0 [%s] waited>=timeout: %s", what, line, tf(dt >= timeout * 0.9));
    else
        say("%s: %d [%s]", what, r, line);
}

static void check_poll(void) {
    section = "poll";
    struct world w = make_world();
    int socks[] = {w.s, w.t};
    int hosts[] = {w.pr, w.ev, w.tm};
    int mixed[] = {w.s, w.pr, w.ev, w.tm, w.t};

    poll_case("sockets, none ready, 100ms", socks, 2, SHORT_MS);
    send(w.s_peer, "s", 1, 0);
    poll_case("sockets, one gets data", socks, 2, LONG_MS);
    send(w.t_peer, "t", 1, 0);
    settle(w.t);
    poll_case("sockets, both ready", socks, 2, 0);
    struct pollfd po[2] = {{w.s, POLLOUT, 0}, {w.t, POLLIN | POLLOUT, 0}};
    rc("sockets POLLOUT", poll(po, 2, 0));
    say("  revents %s / %s", events_str(po[0].revents), events_str(po[1].revents));
    drain_world(&w);

    poll_case("host fds, none ready, 100ms", hosts, 3, SHORT_MS);
    pipe_bump(w.pw);
    eventfd_bump(w.ev);
    poll_case("host fds, pipe+eventfd ready", hosts, 3, 0);
    drain_world(&w);
    arm_timer(w.tm, 50);
    double t0 = now_ms();
    poll_case("host fds, timerfd 50ms", hosts, 3, LONG_MS);
    say("  waited for the timer: %s", tf(waited(t0, 50)));
    drain_world(&w);

    poll_case("mixed, none ready, 100ms", mixed, 5, SHORT_MS);
    pipe_bump(w.pw);
    poll_case("mixed, pipe ready", mixed, 5, 0);
    drain_world(&w);
    send(w.s_peer, "s", 1, 0);
    poll_case("mixed, socket gets data", mixed, 5, LONG_MS);
    settle(w.s);
    eventfd_bump(w.ev);
    pipe_bump(w.pw);
    send(w.t_peer, "t", 1, 0);
    settle(w.t);
    poll_case("mixed, two sockets + pipe + eventfd ready", mixed, 5, 0);
    drain_world(&w);
    arm_timer(w.tm, SHORT_MS);
    t0 = now_ms();
    poll_case("mixed, timerfd fires at 100ms", mixed, 5, LONG_MS);
    say("  waited for the timer: %s", tf(waited(t0, SHORT_MS)));
    drain_world(&w);

    /* Wake-ups: the wait must end when the other kind of fd becomes ready. */
    struct delayed d;
    later(&d, SHORT_MS, SEND_BYTE, w.s_peer);
    t0 = now_ms();
    poll_case("mixed, socket data arrives at 100ms", mixed, 5, LONG_MS);
    say("  woke at the data: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);
    later(&d, SHORT_MS, WRITE_BYTE, w.pw);
    t0 = now_ms();
    int sockpipe[] = {w.s, w.t, w.pr};
    poll_case("sockets + pipe, pipe written at 100ms", sockpipe, 3, LONG_MS);
    say("  woke at the write: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);

    /* Write readiness: a full send buffer, emptied by the peer 100ms into the wait. */
    int small = 65536;
    setsockopt(w.s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(w.s_peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    d.count = fill_sndbuf(w.s);
    struct pollfd pf[2] = {{w.s, POLLOUT, 0}, {w.pr, POLLIN, 0}};
    t0 = now_ms();
    rc("socket with a full send buffer, POLLOUT, 100ms", poll(pf, 2, SHORT_MS));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    later(&d, SHORT_MS, DRAIN, w.s_peer);
    t0 = now_ms();
    rc("peer drains it at 100ms", poll(pf, 2, LONG_MS));
    say("  revents %s / %s, woke at the drain: %s", events_str(pf[0].revents),
        events_str(pf[1].revents), tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);

    /* Special entries. */
    send(w.s_peer, "s", 1, 0);
    settle(w.s);
    struct pollfd ps[4] = {{NEVER_OPEN_FD, POLLIN, 0}, {-1, POLLIN, 0}, {w.s, POLLIN, 0},
                           {w.s, POLLIN | POLLOUT, 0}};
    rc("bad fd, negative fd, socket twice", poll(ps, 4, 0));
    say("  revents %s / %s / %s / %s", events_str(ps[0].revents), events_str(ps[1].revents),
        events_str(ps[2].revents), events_str(ps[3].revents));
    drain_world(&w);
    t0 = now_ms();
    rc("no fds, 100ms", poll(NULL, 0, SHORT_MS));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));

    int l = bound(AF_INET, SOCK_STREAM);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect_to(c, AF_INET, local_port(l));
    struct pollfd pl = {l, POLLIN, 0};
    rc("listener with a pending connection", poll(&pl, 1, LONG_MS));
    say("  revents %s", events_str(pl.revents));
    int a = accept(l, NULL, NULL);
    rc("peer shutdown SHUT_WR", shutdown(a, SHUT_WR));
    struct pollfd ph = {c, POLLIN | POLLRDHUP, 0};
    rc("poll after peer shutdown", poll(&ph, 1, LONG_MS));
    say("  revents %s", events_str(ph.revents));
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (write(sv[1], "u", 1) != 1)
        say("unix write failed");
    struct pollfd pu[2] = {{sv[0], POLLIN, 0}, {c, POLLIN, 0}};
    rc("unix socket + inet socket", poll(pu, 2, 0));
    say("  revents %s / %s", events_str(pu[0].revents), events_str(pu[1].revents));
    close(sv[0]);
    close(sv[1]);
    close(a);
    close(c);
    close(l);

    /* A signal interrupts the wait. */
    int before = sigusr1s;
    later(&d, SHORT_MS, SIGNAL_THREAD, -1);
    struct pollfd pi[2] = {{w.s, POLLIN, 0}, {w.t, POLLIN, 0}};
    rc("sockets, signal at 100ms", poll(pi, 2, LONG_MS));
    say("  handler ran: %s", tf(sigusr1s == before + 1));
    join(&d);

    send(w.s_peer, "s", 1, 0);
    settle(w.s);
    struct pollfd pc[2] = {{w.s, POLLIN, 0}, {w.pr, POLLIN, 0}};
    rc("__poll_chk, socket ready", __poll_chk(pc, 2, 0, sizeof pc));
    say("  revents %s / %s", events_str(pc[0].revents), events_str(pc[1].revents));
    drain_world(&w);
    free_world(&w);
}

static void check_ppoll(void) {
    section = "ppoll";
    struct world w = make_world();
    struct timespec short_ts = {0, SHORT_MS * 1000000L}, long_ts = {LONG_MS / 1000, 0},
                    zero = {0, 0};
    struct pollfd p[3] = {{w.s, POLLIN, 0}, {w.pr, POLLIN, 0}, {w.ev, POLLIN, 0}};
    double t0 = now_ms();
    rc("mixed, none ready, 100ms", ppoll(p, 3, &short_ts, NULL));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    send(w.s_peer, "s", 1, 0);
    settle(w.s);
    eventfd_bump(w.ev);
    rc("mixed, socket+eventfd ready", ppoll(p, 3, &zero, NULL));
    say("  revents %s / %s / %s", events_str(p[0].revents), events_str(p[1].revents),
        events_str(p[2].revents));
    drain_world(&w);
    struct delayed d;
    later(&d, SHORT_MS, SEND_BYTE, w.s_peer);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    t0 = now_ms();
    rc("mixed with sigmask, socket data at 100ms", ppoll(p, 3, &long_ts, &mask));
    say("  revents %s / %s / %s, woke at the data: %s", events_str(p[0].revents),
        events_str(p[1].revents), events_str(p[2].revents),
        tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);
    later(&d, SHORT_MS, WRITE_BYTE, w.pw);
    rc("mixed, no timeout, pipe written at 100ms", ppoll(p, 3, NULL, NULL));
    say("  revents %s / %s / %s", events_str(p[0].revents), events_str(p[1].revents),
        events_str(p[2].revents));
    join(&d);
    drain_world(&w);
    send(w.t_peer, "t", 1, 0);
    settle(w.t);
    struct pollfd pc[2] = {{w.t, POLLIN, 0}, {w.s, POLLIN, 0}};
    rc("__ppoll_chk", __ppoll_chk(pc, 2, &zero, NULL, sizeof pc));
    say("  revents %s / %s", events_str(pc[0].revents), events_str(pc[1].revents));
    drain_world(&w);
    free_world(&w);
}

static void select_show(const char *what, int r, const int *fds, int n, fd_set *rd, fd_set *wr,
                        double t0, int timeout) {
    char line[256] = "";
    for (int i = 0; i < n; i++) {
        char one[16];
        snprintf(one, sizeof one, "%s%s%s", i ? " " : "", FD_ISSET(fds[i], rd) ? "r" : "-",
                 wr && FD_ISSET(fds[i], wr) ? "w" : "-");
        strcat(line, one);
    }
    if (r < 0)
        say("%s: -1 %s", what, errname(errno));
    else if (r == 0)
        say("%s: 0 [%s] waited>=timeout: %s", what, line, tf(waited(t0, timeout)));
    else
        say("%s: %d [%s]", what, r, line);
}

static int fill(fd_set *set, const int *fds, int n) {
    int max = -1;
    FD_ZERO(set);
    for (int i = 0; i < n; i++) {
        FD_SET(fds[i], set);
        if (fds[i] > max)
            max = fds[i];
    }
    return max + 1;
}

static void check_select(int use_pselect) {
    section = use_pselect ? "pselect" : "select";
    struct world w = make_world();
    int fds[] = {w.s, w.t, w.pr, w.ev, w.tm};
    fd_set rd, wr;
    double t0;
    int r;
#define SELECT(rdp, wrp, ms)                                                                   \
    (t0 = now_ms(),                                                                            \
     use_pselect                                                                               \
         ? pselect(nfds, rdp, wrp, NULL,                                                       \
                   &(struct timespec){(ms) / 1000, (long)((ms) % 1000) * 1000000L}, NULL)      \
         : select(nfds, rdp, wrp, NULL,                                                        \
                  &(struct timeval){(ms) / 1000, (long)((ms) % 1000) * 1000L}))
    int nfds = fill(&rd, fds, 5);
    r = SELECT(&rd, NULL, SHORT_MS);
    select_show("read set mixed, none ready, 100ms", r, fds, 5, &rd, NULL, t0, SHORT_MS);
    send(w.s_peer, "s", 1, 0);
    fill(&rd, fds, 5);
    r = SELECT(&rd, NULL, LONG_MS);
    select_show("read set mixed, socket gets data", r, fds, 5, &rd, NULL, t0, LONG_MS);
    pipe_bump(w.pw);
    send(w.t_peer, "t", 1, 0);
    settle(w.t);
    fill(&rd, fds, 5);
    r = SELECT(&rd, NULL, 0);
    select_show("read set mixed, two sockets + pipe ready", r, fds, 5, &rd, NULL, t0, 0);
    drain_world(&w);
    int wfds[] = {w.s, w.pw};
    fill(&rd, fds, 5);
    nfds = fill(&wr, wfds, 2) > nfds ? fill(&wr, wfds, 2) : nfds;
    r = SELECT(&rd, &wr, 0);
    select_show("read set mixed + write set socket,pipe", r, fds, 5, &rd, &wr, t0, 0);
    say("  write set: socket %s pipe %s", tf(FD_ISSET(w.s, &wr)), tf(FD_ISSET(w.pw, &wr)));
    struct delayed d;
    later(&d, SHORT_MS, SEND_BYTE, w.t_peer);
    fill(&rd, fds, 5);
    r = SELECT(&rd, NULL, LONG_MS);
    select_show("read set mixed, socket data at 100ms", r, fds, 5, &rd, NULL, t0, LONG_MS);
    say("  woke at the data: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);
    later(&d, SHORT_MS, WRITE_BYTE, w.pw);
    int sp[] = {w.s, w.t, w.pr};
    nfds = fill(&rd, sp, 3);
    r = SELECT(&rd, NULL, LONG_MS);
    select_show("read set sockets + pipe, pipe written at 100ms", r, sp, 3, &rd, NULL, t0,
                LONG_MS);
    join(&d);
    drain_world(&w);
    arm_timer(w.tm, 50);
    nfds = fill(&rd, fds, 5);
    r = SELECT(&rd, NULL, LONG_MS);
    select_show("read set mixed, timerfd at 50ms", r, fds, 5, &rd, NULL, t0, LONG_MS);
    drain_world(&w);
    /* A closed number inside the fd table (select ignores numbers beyond it). */
    int closed = dup2(w.s, 250);
    close(closed);
    int bad[] = {w.s, closed};
    nfds = fill(&rd, bad, 2);
    r = SELECT(&rd, NULL, 0);
    select_show("read set with a closed fd", r, bad, 0, &rd, NULL, t0, 0);
    nfds = 0;
    r = SELECT(NULL, NULL, SHORT_MS);
    select_show("no fds, 100ms", r, NULL, 0, NULL, NULL, t0, SHORT_MS);
#undef SELECT
    free_world(&w);
}

/* epoll_wait / epoll_pwait, events sorted by their tag. */
static void epoll_case(const char *what, int ep, int timeout, int maxevents, int use_pwait) {
    struct epoll_event ev[16];
    double t0 = now_ms();
    int r = use_pwait ? epoll_pwait(ep, ev, maxevents, timeout, NULL)
                      : epoll_wait(ep, ev, maxevents, timeout);
    if (r < 0) {
        say("%s: -1 %s", what, errname(errno));
        return;
    }
    for (int i = 1; i < r; i++)
        for (int j = i; j > 0 && ev[j].data.u64 < ev[j - 1].data.u64; j--) {
            struct epoll_event tmp = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = tmp;
        }
    char line[256] = "";
    for (int i = 0; i < r; i++) {
        char one[64];
        snprintf(one, sizeof one, "%s%llu:%s", i ? " " : "", (unsigned long long)ev[i].data.u64,
                 events_str(ev[i].events));
        strcat(line, one);
    }
    if (r == 0 && timeout > 0)
        say("%s: 0 waited>=timeout: %s", what, tf(waited(t0, timeout)));
    else
        say("%s: %d [%s]", what, r, line);
}

static int ctl(int ep, int op, int fd, unsigned events, uint64_t tag) {
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, op, fd, &e);
}

/* Tags: 1 socket s, 2 pipe, 3 eventfd, 4 timerfd, 5 socket t (edge-triggered). */
static void check_epoll(void) {
    section = "epoll";
    struct world w = make_world();
    int ep = fd_ok("epoll_create(1)", epoll_create(1));
    say("  cloexec: %s", tf(fcntl(ep, F_GETFD) & FD_CLOEXEC));
    int ep2 = fd_ok("epoll_create1(EPOLL_CLOEXEC)", epoll_create1(EPOLL_CLOEXEC));
    say("  cloexec: %s", tf(fcntl(ep2, F_GETFD) & FD_CLOEXEC));
    rc("epoll_create(0)", epoll_create(0));
    rc("epoll_create1(bad flags)", epoll_create1(0x1234));

    rc("ADD socket", ctl(ep, EPOLL_CTL_ADD, w.s, EPOLLIN, 1));
    rc("ADD pipe", ctl(ep, EPOLL_CTL_ADD, w.pr, EPOLLIN, 2));
    rc("ADD eventfd", ctl(ep, EPOLL_CTL_ADD, w.ev, EPOLLIN, 3));
    rc("ADD timerfd", ctl(ep, EPOLL_CTL_ADD, w.tm, EPOLLIN, 4));
    rc("ADD socket again", ctl(ep, EPOLL_CTL_ADD, w.s, EPOLLIN, 1));
    rc("MOD socket not added", ctl(ep, EPOLL_CTL_MOD, w.t, EPOLLIN, 5));
    rc("DEL socket not added", ctl(ep, EPOLL_CTL_DEL, w.t, 0, 0));
    rc("ADD epoll fd to itself", ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 9));
    rc("ADD bad fd", ctl(ep, EPOLL_CTL_ADD, NEVER_OPEN_FD, EPOLLIN, 9));
    rc("ctl on a non-epoll fd", ctl(w.pr, EPOLL_CTL_ADD, w.s, EPOLLIN, 9));
    char path[] = "/tmp/socket_calls.XXXXXX";
    int f = mkstemp(path);
    unlink(path);
    rc("ADD regular file", ctl(ep, EPOLL_CTL_ADD, f, EPOLLIN, 9));
    close(f);
    rc("bad op", ctl(ep, 99, w.s, EPOLLIN, 9));

    epoll_case("mixed, none ready, 100ms", ep, SHORT_MS, 16, 0);
    send(w.s_peer, "s", 1, 0);
    epoll_case("mixed, socket gets data", ep, LONG_MS, 16, 0);
    epoll_case("level-triggered: again, unread", ep, 0, 16, 0);
    pipe_bump(w.pw);
    eventfd_bump(w.ev);
    epoll_case("socket + pipe + eventfd ready", ep, 0, 16, 0);
    epoll_case("maxevents 2 of 3 ready", ep, 0, 2, 0);
    epoll_case("maxevents 0", ep, 0, 0, 0);
    rc("epoll_wait on a pipe", epoll_wait(w.pr, (struct epoll_event[1]){0}, 1, 0));
    drain_world(&w);
    epoll_case("drained, 100ms", ep, SHORT_MS, 16, 0);
    arm_timer(w.tm, 50);
    epoll_case("timerfd at 50ms", ep, LONG_MS, 16, 0);
    drain_world(&w);

    /* Wake-ups across kinds. */
    struct delayed d;
    later(&d, SHORT_MS, SEND_BYTE, w.s_peer);
    double t0 = now_ms();
    epoll_case("socket data arrives at 100ms", ep, LONG_MS, 16, 0);
    say("  woke at the data: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);
    later(&d, SHORT_MS, WRITE_BYTE, w.pw);
    t0 = now_ms();
    epoll_case("epoll_pwait, pipe written at 100ms", ep, LONG_MS, 16, 1);
    say("  woke at the write: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    drain_world(&w);
    int before = sigusr1s;
    later(&d, SHORT_MS, SIGNAL_THREAD, -1);
    epoll_case("signal at 100ms", ep, LONG_MS, 16, 0);
    say("  handler ran: %s", tf(sigusr1s == before + 1));
    join(&d);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    struct epoll_event one_ev;
    t0 = now_ms();
    rc("epoll_pwait with sigmask, none ready, 100ms", epoll_pwait(ep, &one_ev, 1, SHORT_MS, &mask));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));

    struct timespec ts100 = {0, SHORT_MS * 1000000L};
    t0 = now_ms();
    rc("epoll_pwait2, none ready, 100ms", epoll_pwait2(ep, &one_ev, 1, &ts100, NULL));
    say("  waited>=timeout: %s", tf(waited(t0, SHORT_MS)));
    send(w.s_peer, "s", 1, 0);
    settle(w.s);
    rc("epoll_pwait2, no timeout, socket ready", epoll_pwait2(ep, &one_ev, 1, NULL, &mask));
    say("  tag %llu events %s", (unsigned long long)one_ev.data.u64, events_str(one_ev.events));
    drain_world(&w);

    section = "epoll-accept";
    /* The server pattern: a listener in the set, a client arriving during the wait. */
    int l = bound(AF_INET, SOCK_STREAM);
    rc("ADD listener", ctl(ep, EPOLL_CTL_ADD, l, EPOLLIN, 6));
    int client = socket(AF_INET, SOCK_STREAM, 0);
    d.port = local_port(l);
    later(&d, SHORT_MS, CONNECT_V4, client);
    t0 = now_ms();
    epoll_case("client connects at 100ms", ep, LONG_MS, 16, 0);
    say("  woke at the connection: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    int accepted = fd_ok("accept4", accept4(l, NULL, NULL, SOCK_NONBLOCK));
    epoll_case("nothing pending, 100ms", ep, SHORT_MS, 16, 0);
    rc("DEL listener", ctl(ep, EPOLL_CTL_DEL, l, 0, 0));

    section = "epoll-out";
    /* Write readiness, edge-triggered: a full send buffer emptied by the peer mid-wait. */
    int small = 65536;
    setsockopt(accepted, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    rc("ADD EPOLLOUT|EPOLLET", ctl(ep, EPOLL_CTL_ADD, accepted, EPOLLOUT | EPOLLET, 6));
    epoll_case("writable at first", ep, 0, 16, 0);
    d.count = fill_sndbuf(accepted);
    epoll_case("send buffer full, 100ms", ep, SHORT_MS, 16, 0);
    later(&d, SHORT_MS, DRAIN, client);
    t0 = now_ms();
    epoll_case("peer drains it at 100ms", ep, LONG_MS, 16, 0);
    say("  woke at the drain: %s", tf(waited(t0, SHORT_MS) && now_ms() - t0 < LONG_MS * 0.8));
    join(&d);
    rc("DEL", ctl(ep, EPOLL_CTL_DEL, accepted, 0, 0));
    close(accepted);
    close(client);
    close(l);

    section = "epoll-et";
    rc("ADD socket EPOLLET", ctl(ep, EPOLL_CTL_ADD, w.t, EPOLLIN | EPOLLET, 5));
    send(w.t_peer, "e1", 2, 0);
    epoll_case("data arrives", ep, LONG_MS, 16, 0);
    epoll_case("again without reading, 100ms", ep, SHORT_MS, 16, 0);
    send(w.t_peer, "e2", 2, 0);
    epoll_case("more data arrives", ep, LONG_MS, 16, 0);
    drain(w.t);
    rc("MOD pipe EPOLLET", ctl(ep, EPOLL_CTL_MOD, w.pr, EPOLLIN | EPOLLET, 2));
    pipe_bump(w.pw);
    epoll_case("pipe written", ep, LONG_MS, 16, 0);
    epoll_case("pipe again without reading, 100ms", ep, SHORT_MS, 16, 0);
    drain_world(&w);

    section = "epoll-oneshot";
    rc("MOD socket EPOLLONESHOT", ctl(ep, EPOLL_CTL_MOD, w.s, EPOLLIN | EPOLLONESHOT, 1));
    send(w.s_peer, "o", 1, 0);
    epoll_case("data arrives", ep, LONG_MS, 16, 0);
    epoll_case("disarmed, data unread, 100ms", ep, SHORT_MS, 16, 0);
    rc("MOD re-arm", ctl(ep, EPOLL_CTL_MOD, w.s, EPOLLIN | EPOLLONESHOT, 1));
    epoll_case("re-armed", ep, 0, 16, 0);
    drain(w.s);
    rc("MOD socket EPOLLIN|EPOLLOUT", ctl(ep, EPOLL_CTL_MOD, w.s, EPOLLIN | EPOLLOUT, 1));
    epoll_case("writable", ep, 0, 16, 0);
    rc("MOD socket EPOLLIN|EPOLLRDHUP", ctl(ep, EPOLL_CTL_MOD, w.s, EPOLLIN | EPOLLRDHUP, 1));

    section = "epoll-del";
    rc("DEL socket", ctl(ep, EPOLL_CTL_DEL, w.s, 0, 0));
    rc("DEL socket again", ctl(ep, EPOLL_CTL_DEL, w.s, 0, 0));
    send(w.s_peer, "d", 1, 0);
    settle(w.s);
    epoll_case("deleted socket has data, 100ms", ep, SHORT_MS, 16, 0);
    drain(w.s);
    /* Closing the only reference removes an fd from the set. */
    int c, a;
    tcp_pair(AF_INET, &c, &a);
    rc("ADD another socket", ctl(ep, EPOLL_CTL_ADD, c, EPOLLIN, 7));
    send(a, "x", 1, 0);
    epoll_case("it gets data", ep, LONG_MS, 16, 0);
    rc("close it while in the set", close(c));
    epoll_case("after close, 100ms", ep, SHORT_MS, 16, 0);
    close(a);

    section = "epoll-nested";
    /* An epoll fd in poll() and inside another epoll set, readiness coming from a socket. */
    rc("ADD socket to the second set", ctl(ep2, EPOLL_CTL_ADD, w.s, EPOLLIN, 1));
    struct pollfd pe = {ep2, POLLIN, 0};
    rc("poll epoll fd, nothing ready", poll(&pe, 1, 0));
    send(w.s_peer, "n", 1, 0);
    settle(w.s);
    rc("poll epoll fd, socket ready", poll(&pe, 1, LONG_MS));
    say("  revents %s", events_str(pe.revents));
    rc("ADD epoll fd to the first set", ctl(ep, EPOLL_CTL_ADD, ep2, EPOLLIN, 8));
    epoll_case("outer set", ep, LONG_MS, 16, 0);
    drain_world(&w);
    rc("DEL epoll fd", ctl(ep, EPOLL_CTL_DEL, ep2, 0, 0));

    section = "epoll-two-sets";
    /* One socket in two sets: both report it. */
    rc("ADD socket to set 1", ctl(ep, EPOLL_CTL_ADD, w.s, EPOLLIN, 1));
    send(w.s_peer, "2", 1, 0);
    epoll_case("set 1", ep, LONG_MS, 16, 0);
    epoll_case("set 2", ep2, LONG_MS, 16, 0);
    drain_world(&w);
    epoll_case("set 2 after reading, 100ms", ep2, SHORT_MS, 16, 0);

    section = "epoll-errors";
    /* A failed connect reports ERR|HUP, requested or not. */
    int r = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    rc("connect to a closed port", connect_to(r, AF_INET, closed_port(AF_INET, SOCK_STREAM)));
    rc("ADD it with EPOLLIN only", ctl(ep2, EPOLL_CTL_ADD, r, EPOLLIN, 9));
    epoll_case("refused", ep2, LONG_MS, 16, 0);
    close(r);
    epoll_case("closed, 100ms", ep2, SHORT_MS, 16, 0);

    section = "epoll-dup";
    /* A duplicate names the same set, which lives until its last number is closed. */
    int epd = fd_ok("dup of an EPOLL_CLOEXEC epoll fd", dup(ep2));
    say("  cloexec: %s", tf(fcntl(epd, F_GETFD) & FD_CLOEXEC));
    send(w.s_peer, "d", 1, 0);
    epoll_case("wait on the dup", epd, LONG_MS, 16, 0);
    rc("close the original", close(ep2));
    epoll_case("wait on the dup after closing the original", epd, 0, 16, 0);
    rc("DEL socket via the dup", ctl(epd, EPOLL_CTL_DEL, w.s, 0, 0));
    epoll_case("after DEL, 100ms", epd, SHORT_MS, 16, 0);
    rc("ADD socket via the dup", ctl(epd, EPOLL_CTL_ADD, w.s, EPOLLIN, 11));
    epoll_case("after ADD", epd, 0, 16, 0);
    say("dup2 of the dup to 400: %s", tf(dup2(epd, 400) == 400));
    rc("close the dup", close(epd));
    epoll_case("wait on 400", 400, 0, 16, 0);
    drain_world(&w);
    epoll_case("wait on 400 after reading, 100ms", 400, SHORT_MS, 16, 0);
    close(400);
    close(ep);
    free_world(&w);
}

/* ---------- modes ---------- */

/* A TCP listener of `family` that a client of this process has connected to, or -1. */
static int working_listener(int family) {
    int l = bound(family, SOCK_STREAM);
    int c = socket(family, SOCK_STREAM, 0);
    if (l < 0 || connect_to(c, family, local_port(l)) < 0 || accept(l, NULL, NULL) < 0)
        return -1;
    return l;
}

static int listen_and_wait(void) {
    int l4 = working_listener(AF_INET), l6 = working_listener(AF_INET6);
    int u = bound(AF_INET, SOCK_DGRAM);
    if (l4 < 0 || l6 < 0 || u < 0) {
        perror("listen-and-wait");
        return 1;
    }
    /* The UDP socket must work too: a datagram to itself. */
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET, &ss, local_port(u));
    char b;
    if (sendto(u, "u", 1, 0, (struct sockaddr *)&ss, len) != 1 || recv(u, &b, 1, 0) != 1) {
        perror("udp to itself");
        return 1;
    }
    printf("ports %u %u %u\n", local_port(l4), local_port(l6), local_port(u));
    fflush(stdout);
    if (read(0, &b, 1) < 0)
        perror("read stdin");
    return 0;
}

/* The same calls made through syscall(2), as libgo (gccgo) makes some of them. */
static void check_syscall(void) {
    section = "syscall";
    int l = fd_ok("socket", (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t len = loopback(AF_INET, &ss, 0);
    rc("bind", syscall(SYS_bind, l, (struct sockaddr *)&ss, len));
    rc("listen", syscall(SYS_listen, l, 8));
    len = sizeof ss;
    rc("getsockname", syscall(SYS_getsockname, l, (struct sockaddr *)&ss, &len));
    uint16_t port = port_of(&ss);
    say("port matches getsockname(3): %d", port == local_port(l));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    len = loopback(AF_INET, &ss, port);
    rc("connect", syscall(SYS_connect, c, (struct sockaddr *)&ss, len));
    int a = fd_ok("accept4 nonblocking", (int)syscall(SYS_accept4, l, NULL, NULL, SOCK_NONBLOCK));
    rc("fcntl F_GETFL has O_NONBLOCK", (syscall(SYS_fcntl, a, F_GETFL) & O_NONBLOCK) != 0);
    int type = 0;
    len = sizeof type;
    rc("getsockopt SO_TYPE", syscall(SYS_getsockopt, a, SOL_SOCKET, SO_TYPE, &type, &len));
    say("type is SOCK_STREAM: %d", type == SOCK_STREAM);
    rc("write", syscall(SYS_write, c, "ping", 4));
    struct iovec out[2] = {{"-v", 2}, {"ec", 2}};
    rc("writev", syscall(SYS_writev, c, out, 2));
    rc("sendto", syscall(SYS_sendto, c, "!", 1, 0, NULL, 0));
    struct pollfd p = {a, POLLIN, 0};
    rc("poll", syscall(SYS_poll, &p, 1, LONG_MS));
    say("revents: %s", (p.revents & POLLIN) ? "POLLIN" : "none");
    sleep_ms(50);
    char x[3] = {0}, y[8] = {0};
    struct iovec in[2] = {{x, 2}, {y, sizeof y - 1}};
    rc("readv", syscall(SYS_readv, a, in, 2));
    say("data: '%s' '%s'", x, y);
    rc("shutdown SHUT_WR", syscall(SYS_shutdown, c, SHUT_WR));
    settle(a);
    char buf[8];
    rc("read at EOF", syscall(SYS_read, a, buf, sizeof buf));
    rc("recvfrom nothing left", syscall(SYS_recvfrom, a, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL));
    rc("getpid like getpid(3)", syscall(SYS_getpid) == getpid());
    rc("close", syscall(SYS_close, a));
    rc("close again", syscall(SYS_close, a));
    close(c);
    close(l);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--listen-and-wait") == 0)
        return listen_and_wait();
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--listen-and-wait]\n", argv[0]);
        return 2;
    }
    handle(SIGPIPE, on_sigpipe, 0);
    handle(SIGUSR1, on_sigusr1, 0);
    handle(SIGUSR2, on_sigusr2, 1);
    signal(SIGALRM, on_alarm);
    alarm(40); /* a hung call shows where, instead of hanging the test */

    check_socket();
    check_socketpair();
    check_bind_listen_connect(AF_INET);
    check_bind_listen_connect(AF_INET6);
    check_v6_specials();
    check_accept4();
    check_connect_nonblocking();
    check_shutdown();
    check_close();
    check_read_write();
    check_udp(AF_INET);
    check_udp(AF_INET6);
    check_sockopts();
    check_fcntl();
    check_ioctl();
    check_dup();
    check_msg_flags();
    check_blocking();
    check_fstat();
    check_sendfile();
    check_poll();
    check_ppoll();
    check_select(0);
    check_select(1);
    check_epoll();
    check_syscall();
    section = "end";
    say("done");
    return 0;
}
