#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Prints the objcopy options that rename every section the kernel writes to
# one of two names: lkl_data (initialised) and lkl_bss (zero-filled). In the
# host program each name becomes one range with __start_/__stop_ symbols, so
# a forked child can put the kernel's memory back as it was before the first
# boot and boot a kernel of its own (the parent's threads did not follow it).
#
# Usage: state-sections.sh READELF OBJECT

"$1" -SW "$2" | sed -E 's/^ *\[ *[0-9]+\] +//' |
	awk 'NF >= 8 && $7 ~ /W/ && $7 ~ /A/ {
		printf "--rename-section %s=%s ", $1, ($2 == "NOBITS" ? "lkl_bss" : "lkl_data")
	}'
