/* Output of the test programs whose lines are compared with the host kernel's run:
 * "section: text" lines, and errno values by name. */
#ifndef REPORT_H
#define REPORT_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static const char *section = "start";

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", section);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static const char *errname(int e) {
    static char other[32];
    switch (e) {
    case 0: return "0";
#define E(x) case x: return #x;
        E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
        E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY)
        E(ESPIPE) E(EPIPE) E(ERANGE) E(ENOSYS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE)
        E(EPROTOTYPE) E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP)
        E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
        E(ENETUNREACH) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
        E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS)
#undef E
    default:
        snprintf(other, sizeof other, "errno%d", e);
        return other;
    }
}

#endif
