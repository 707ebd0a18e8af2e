// SPDX-License-Identifier: GPL-2.0-only
/* Kbuild wants this file; the port has no assembly that needs offsets. */
#define COMPILE_OFFSETS
#include <linux/kbuild.h>

int main(void)
{
	return 0;
}
