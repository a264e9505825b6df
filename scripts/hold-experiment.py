#!/usr/bin/python3
"""hold-experiment.py: what would an idle epoch cost if QEMU, not the guest,
stopped at epoch boundaries? (issue 8; docs/benchmarks.md, "What an idle
epoch costs".)

Today every guest's agent wakes at every epoch boundary to execute the
barrier, and under TCG that wake-up is most of an idle epoch's cost. This
runs K guests whose /init only sleeps (no agent) on the `hold` QEMU variant
(third_party/qemu/patches/experimental/hold/), which holds each guest at
every millisecond of virtual time; this script plays the controller,
releasing all guests once all are held (lock-step, like detvm's barrier).
In the same run it measures detvm itself on the same idle load: K nodes
running `sleep` under `--idle warp`.

Usage: /usr/bin/python3 scripts/hold-experiment.py [ROUNDS]   (after make build)
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("DETVM_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "detvm")
HOLD_NS = 1_000_000  # detvm's default epoch
# detvm's kernel command line (vmm.DefaultAppend), so the guest kernel is the same.
APPEND = ("console=ttyS0 quiet mitigations=off nolapic_timer no_timer_check cryptomgr.notests "
          "tsc=reliable hpet=disable init_on_alloc=0 rodata=off panic=-1 rdinit=/init")


def die(msg):
    sys.exit("hold-experiment: error: " + msg)


def newc(path, files):
    """Write a newc cpio archive of (name, mode, data) to path."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(files + [("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        out += ("070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))).encode() + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    with open(path, "wb") as f:
        f.write(out)


def hold_run(qemu, kernel, initrd, tmp, guests, rounds):
    """Lock-step K held guests for ROUNDS epochs; wall µs per round after boot."""
    procs, socks = [], []
    try:
        for i in range(guests):
            ours, theirs = socket.socketpair()
            env = dict(os.environ, DETVM_HOLD_FD=str(theirs.fileno()), DETVM_HOLD_NS=str(HOLD_NS))
            argv = [qemu, "-L", "/usr/share/qemu", "-nodefaults", "-no-user-config", "-display", "none",
                    "-no-reboot", "-machine", "pc,accel=tcg", "-cpu", "max,-rdrand,-rdseed", "-smp", "1",
                    "-m", "256", "-icount", "shift=0,sleep=off,align=off",
                    "-rtc", "clock=vm,base=2026-01-01T00:00:00", "-seed", "0",
                    "-bios", "/usr/share/qemu/qboot.rom", "-kernel", kernel, "-initrd", initrd,
                    "-append", APPEND, "-chardev", "file,id=console,path=%s/console%d.log" % (tmp, i),
                    "-serial", "chardev:console"]
            procs.append(subprocess.Popen(argv, env=env, pass_fds=[theirs.fileno()]))
            theirs.close()
            socks.append(ours)
        start = rounds // 4  # boot is ~470 epochs; measure well after it
        t0 = None
        for r in range(rounds):
            for s in socks:
                if s.recv(1) != b"B":
                    die("guest %d's QEMU went away (console in %s)" % (socks.index(s), tmp))
            if r == start:
                t0 = time.monotonic()
            for s in socks:
                s.send(b"R")
        t1 = time.monotonic()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    for i in range(guests):
        with open("%s/console%d.log" % (tmp, i), errors="replace") as f:
            if "sleeping" not in f.read():
                die("guest %d never reached its sleep (console in %s)" % (i, tmp))
    return (t1 - t0) / (rounds - start) * 1e6


def detvm_run(tmp, guests, seconds):
    """detvm on the same load: K nodes running sleep, --idle warp; wall µs per epoch after boot."""
    scen = os.path.join(tmp, "idle-%d.yaml" % guests)
    with open(scen, "w") as f:
        f.write("name: idle-%d\nduration: %ds\nnodes:\n  - name: node\n    count: %d\n"
                "    binary: /bin/busybox\n    args: [sleep, \"1000\"]\n    daemon: true\n"
                % (guests, seconds, guests))
    # The second run starts warm: a cold run's wall time also holds saving
    # the booted cluster for warm starts, which boot_wall_ms does not.
    for i in (1, 2):
        out = subprocess.run([os.path.join(ROOT, "bin", "detvm"), "run", scen, "--idle", "warp", "--json",
                              "--out", os.path.join(tmp, "run-%d-%d" % (guests, i))],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
        if out.returncode != 0:
            die("detvm run %s failed (exit %d)" % (scen, out.returncode))
    d = json.loads(out.stdout)
    if not d.get("warm_start"):
        die("the second detvm run of %s did not start warm" % scen)
    return (d["wall_ms"] - d["boot_wall_ms"]) * 1000 / d["epochs"]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    if not os.access(os.path.join(ROOT, "bin", "detvm"), os.X_OK):
        die("bin/detvm missing; run make build first")
    kernels = sorted(glob.glob(os.path.join(CACHE, "kernel", "*", "vmlinux-*")))
    if not kernels:
        die("no unpacked guest kernel in %s/kernel; run any scenario once (make demo)" % CACHE)
    qemu = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build-qemu.sh")],
                          env=dict(os.environ, DETVM_QEMU_VARIANT="hold", DETVM_QEMU_PRINT_PATH="1"),
                          stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="detvm-hold-")
    initrd = os.path.join(tmp, "sleep.cpio")
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    newc(initrd, [("bin", 0o40755, b""), ("proc", 0o40755, b""), ("bin/busybox", 0o100755, busybox),
                  ("init", 0o100755, b"#!/bin/busybox sh\necho sleeping\nexec /bin/busybox sleep 1000000\n")])
    print("kernel %s\nQEMU   %s\n" % (kernels[-1], qemu))
    print("%-7s %-34s %-34s %s" % ("guests", "held by QEMU: wall us per 1 ms", "detvm warp: wall us per 1 ms",
                                    "detvm / held"))
    for k in (1, 4):
        held = hold_run(qemu, kernels[-1], initrd, tmp, k, rounds)
        agent = detvm_run(tmp, k, 3)
        print("%-7d %-34.1f %-34.1f %.1fx" % (k, held, agent, agent / held))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
