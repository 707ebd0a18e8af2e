/*
 * Input to bindgen: the kernel library's entry points and the UAPI headers the safe layer
 * needs, all from the headers that `make headers_install` produced for ARCH=lkl.
 */
#include <linux/types.h>

/* linux/sysctl.h (struct __sysctl_args) names libc's size_t; it is the kernel's. */
typedef __kernel_size_t size_t;

#include <asm/host_ops.h>
#include <asm/unistd.h>
#include <asm-generic/socket.h>
#include <linux/errno.h>
#include <linux/eventpoll.h>
#include <linux/fcntl.h>
#include <linux/if.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/mount.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/reboot.h>
#include <linux/socket.h>
#include <linux/sockios.h>
#include <linux/sysctl.h>
#include <linux/tcp.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <linux/uio.h>
#include <linux/utsname.h>
