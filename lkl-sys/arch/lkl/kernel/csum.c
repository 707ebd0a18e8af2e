// SPDX-License-Identifier: GPL-2.0-only
/*
 * The Internet checksum of a buffer (what lib/checksum.c calls do_csum),
 * 64 bits at a time. Little-endian hosts only, like
 * the rest of the port: an odd start address is summed from the byte after
 * and the result byte-swapped, as the generic code does.
 */
#include <linux/types.h>
#include <asm/checksum.h>

/* a + b in ones' complement: the carry out comes back in at the bottom */
static inline u64 add(u64 a, u64 b)
{
	u64 s = a + b;

	return s + (s < a);
}

unsigned int do_csum(const unsigned char *buff, int len)
{
	bool odd;
	u64 sum = 0;

	if (len <= 0)
		return 0;
	odd = (unsigned long)buff & 1;
	if (odd) {
		sum = (u64)*buff << 8;
		buff++;
		len--;
	}
	while (len >= 2 && ((unsigned long)buff & 7)) {
		sum = add(sum, *(const u16 *)buff);
		buff += 2;
		len -= 2;
	}
	if (len >= 32) {
		/*
		 * The 32-bit halves of each word into four plain 64-bit sums:
		 * no carry chain from one addition to the next, so the CPU
		 * overlaps them, and no carry is lost before 2^32 halves.
		 */
		u64 s0 = 0, s1 = 0, s2 = 0, s3 = 0;

		for (; len >= 32; buff += 32, len -= 32) {
			const u64 *w = (const u64 *)buff;

			s0 += (u32)w[0] + (u64)(u32)w[1];
			s1 += (w[0] >> 32) + (w[1] >> 32);
			s2 += (u32)w[2] + (u64)(u32)w[3];
			s3 += (w[2] >> 32) + (w[3] >> 32);
		}
		sum = add(add(sum, s0), add(s1, add(s2, s3)));
	}
	for (; len >= 8; buff += 8, len -= 8)
		sum = add(sum, *(const u64 *)buff);
	if (len >= 4) {
		sum = add(sum, *(const u32 *)buff);
		buff += 4;
		len -= 4;
	}
	if (len >= 2) {
		sum = add(sum, *(const u16 *)buff);
		buff += 2;
		len -= 2;
	}
	if (len)
		sum = add(sum, *buff);

	/* fold to 16 bits */
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	if (odd)
		sum = ((sum >> 8) & 0xff) | ((sum & 0xff) << 8);
	return sum;
}
