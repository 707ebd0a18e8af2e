/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_LKL_PTRACE_H
#define _ASM_LKL_PTRACE_H

/* Tasks never enter or leave user mode: there are no saved registers. */
struct pt_regs {
	void *unused;
};

#define user_mode(regs)			0
#define kernel_mode(regs)		1
#define profile_pc(regs)		0
#define instruction_pointer(regs)	0
#define user_stack_pointer(regs)	0

static inline long regs_return_value(struct pt_regs *regs)
{
	return 0;
}

#define current_pt_regs()		((struct pt_regs *)0)

#endif /* _ASM_LKL_PTRACE_H */
