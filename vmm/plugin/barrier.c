/*
 * barrier.c: detvm's barrier hypercall for QEMU 10 TCG guests.
 *
 * The guest agent executes one magic 8-byte NOP (0f 1f 84 00 44 45 54 4d,
 * "nopw 0x4d544544(%rax,%rax,1)") at every epoch boundary. This plugin puts an
 * exec callback on exactly that instruction; the callback writes one byte to
 * the controller's socket and blocks until the controller writes one byte
 * back. While blocked the vCPU retires no instructions, so under icount the
 * guest's virtual clock is frozen and the guest cannot observe how long the
 * host took (DESIGN.md, "Barrier hypercall").
 *
 * Debian ships no qemu-plugin.h, so the few functions used are declared here
 * by hand against plugin API version 4 (QEMU 10.0 reports min 2, cur 4).
 *
 * Arguments: fd=N, a connected stream socket inherited from the controller.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
size_t qemu_plugin_insn_data(const struct qemu_plugin_insn *insn, void *dest, size_t len);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 4;

static const uint8_t magic[8] = {0x0f, 0x1f, 0x84, 0x00, 0x44, 0x45, 0x54, 0x4d};
static int sock = -1;

static void fail(const char *what)
{
	char buf[256];
	snprintf(buf, sizeof buf, "detvm-barrier: %s: %s\n", what, strerror(errno));
	qemu_plugin_outs(buf);
	/* A guest that cannot reach its controller must not run on freely:
	 * that would silently break determinism. */
	_exit(70);
}

static void on_barrier(unsigned int vcpu, void *udata)
{
	uint8_t b = 'B';
	ssize_t n;
	(void)vcpu;
	(void)udata;
	do {
		n = write(sock, &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		fail("write");
	do {
		n = read(sock, &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 0) {
		errno = EPIPE;
		fail("controller closed the barrier socket");
	}
	if (n != 1)
		fail("read");
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t i, n = qemu_plugin_tb_n_insns(tb);
	(void)id;
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint8_t data[8];
		if (qemu_plugin_insn_size(insn) != sizeof data)
			continue;
		if (qemu_plugin_insn_data(insn, data, sizeof data) != sizeof data)
			continue;
		if (memcmp(data, magic, sizeof data) == 0)
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_barrier, QEMU_PLUGIN_CB_NO_REGS, NULL);
	}
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
	int i;
	(void)info;
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "fd=", 3) == 0)
			sock = atoi(argv[i] + 3);
	}
	if (sock < 0) {
		qemu_plugin_outs("detvm-barrier: missing fd=N argument\n");
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	return 0;
}
