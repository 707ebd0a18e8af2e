/*
 * linux/if.h includes <sys/socket.h> for struct sockaddr when built outside the kernel.
 * Bindings are generated without host libc headers, so this supplies the kernel's own
 * definition (include/linux/socket.h), which has the same layout as glibc's.
 */
#ifndef LKL_SYS_SHIM_SYS_SOCKET_H
#define LKL_SYS_SHIM_SYS_SOCKET_H

#include <linux/socket.h>

struct sockaddr {
	__kernel_sa_family_t sa_family;
	char sa_data[14];
};

#endif
