#include "textflag.h"

// func barrier()
// The magic NOP "nopw 0x4d544544(%rax,%rax,1)": the detvm barrier plugin
// blocks the vCPU on it until the controller releases this guest. To the CPU
// it is an ordinary NOP, so the agent runs unchanged without the plugin.
TEXT ·barrier(SB), NOSPLIT, $0-0
	BYTE $0x0f; BYTE $0x1f; BYTE $0x84; BYTE $0x00
	BYTE $0x44; BYTE $0x45; BYTE $0x54; BYTE $0x4d
	RET
