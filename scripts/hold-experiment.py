#!/usr/bin/python3
"""hold-experiment.py: barriers that QEMU holds at virtual-time boundaries
instead of the guest agent executing one every epoch (issue 8;
docs/benchmarks.md, "What an idle epoch costs"). Written to decide whether
to build detvm's barrier on them, and kept as the test of the QEMU patch.

Uses detvm's QEMU (patch 0004, third_party/qemu/patches/):
with DETVM_HOLD_FD/DETVM_HOLD_NS set, QEMU holds the guest at every multiple
of DETVM_HOLD_NS of virtual time and waits for one byte on the fd: R releases
it, W also wakes it (a newline into its second serial port). This
script plays the controller. Its guests run detvm's kernel with a busybox
/init of their own, no agent.

  bench [ROUNDS]  what an idle epoch costs: K guests that only sleep, held
                  every 1 ms in lock-step, against detvm itself on the same
                  load (K nodes running `sleep`, --idle warp) in the same run.
  check           that holds are invisible to the guest: a guest printing its
                  ktime (ns) and interrupt counts must print the same bytes
                  with no holds, holds every 1 ms and every 0.3 ms, QMP
                  stop/cont and a migration during holds, and, from that
                  migration, restored. Then the wake: released with W at
                  holds 600, 900 and 1234, a guest blocked on ttyS1 must wake
                  at the same ktime in two runs, one under a CPU hog.
                  Exit 1 if any differs.

Usage: /usr/bin/python3 scripts/hold-experiment.py bench|check   (after make build)
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("DETVM_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "detvm")
EPOCH_NS = 1_000_000  # detvm's default epoch


def go_const(name):
    """A string constant of package vmm (vmm/config.go), literals joined by +."""
    with open(os.path.join(ROOT, "vmm", "config.go")) as f:
        src = f.read()
    m = re.search(r"^const %s = ((?:\s*\+?\s*\"(?:[^\"\\]|\\.)*\")+)" % name, src, re.M)
    if not m:
        sys.exit("hold-experiment: error: no string const %s in vmm/config.go" % name)
    return "".join(json.loads(lit) for lit in re.findall(r'"(?:[^"\\]|\\.)*"', m.group(1)))


# detvm's kernel command line and wall clock, read from vmm, so the guest
# kernel boots as it does in detvm.
APPEND = go_const("DefaultAppend")
RTC_BASE = go_const("DefaultRTCBase")
SLEEP_INIT = b"#!/bin/busybox sh\necho sleeping\nexec /bin/busybox sleep 1000000\n"
# Prints what would move if a hold were visible: the kernel's ktime in ns
# and its interrupt counts, with work and sleeps of varying length between.
PROBE_INIT = b"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
i=0
while [ $i -lt 60 ]; do
  /bin/busybox grep "now at" /proc/timer_list
  /bin/busybox grep -E "^ *(0|LOC|RES):" /proc/interrupts | /bin/busybox tr -s " " | /bin/busybox tr "\\n" " "; echo
  j=0; while [ $j -lt $((i * 37 % 200)) ]; do j=$((j+1)); done
  /bin/busybox usleep $((1000 + i * 513))
  i=$((i+1))
done
echo done
/bin/busybox poweroff -f
"""


WAKE_INIT = b"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox stty -F /dev/ttyS1 raw -echo
i=0
while [ $i -lt 3 ]; do
  /bin/busybox head -c 1 /dev/ttyS1 > /dev/null
  /bin/busybox grep "now at" /proc/timer_list
  i=$((i+1))
done
echo done
/bin/busybox poweroff -f
"""
WAKE_AT = (600, 900, 1234)


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


def initrd(tmp, name, init):
    path = os.path.join(tmp, name + ".cpio")
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    newc(path, [("bin", 0o40755, b""), ("proc", 0o40755, b""), ("dev", 0o40755, b""),
                ("bin/busybox", 0o100755, busybox), ("init", 0o100755, init)])
    return path


class Guest:
    """One QEMU, held every hold_ns of virtual time (0: never) through a socket pair."""

    def __init__(self, env, initrd_path, console, hold_ns, qmp=None, incoming=False):
        argv = [env["qemu"], "-L", "/usr/share/qemu", "-nodefaults", "-no-user-config", "-display", "none",
                "-no-reboot", "-machine", "pc,accel=tcg", "-cpu", "max,-rdrand,-rdseed", "-smp", "1",
                "-m", "256", "-icount", "shift=0,sleep=off,align=off",
                "-rtc", "clock=vm,base=" + RTC_BASE, "-seed", "0",
                "-bios", "/usr/share/qemu/qboot.rom", "-kernel", env["kernel"], "-initrd", initrd_path,
                "-append", APPEND, "-chardev", "file,id=console,path=" + console, "-serial", "chardev:console",
                # ttyS1: the hold wakes the guest by a newline into it (W instead of R).
                "-chardev", "null,id=detvm-wake", "-serial", "chardev:detvm-wake"]
        if qmp:
            argv += ["-qmp", "unix:%s,server=on,wait=off" % qmp]
        if incoming:
            argv += ["-incoming", "defer"]
        penv, fds, theirs = dict(os.environ), [], None
        self.sock = None
        if hold_ns:
            self.sock, theirs = socket.socketpair()
            penv.update(DETVM_HOLD_FD=str(theirs.fileno()), DETVM_HOLD_NS=str(hold_ns))
            fds = [theirs.fileno()]
        self.proc = subprocess.Popen(argv, env=penv, pass_fds=fds)
        if theirs:
            theirs.close()
        self.qmp = qmp and QMP(qmp)

    def held(self):
        """Wait for the next hold; False when QEMU has exited."""
        return self.sock.recv(1) == b"B"

    def release(self):
        try:
            self.sock.send(b"R")
        except OSError:
            pass  # QEMU powered off meanwhile

    def kill(self):
        self.proc.kill()
        self.proc.wait()


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        for _ in range(200):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            die("no QMP socket at " + path)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self("qmp_capabilities")

    def __call__(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args} if args else {"execute": cmd}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "error" in r:
                die("QMP %s: %s" % (cmd, r["error"]))
            if "return" in r:
                return r["return"]


def bench_held(env, rd, tmp, guests, rounds):
    """Lock-step K held guests for ROUNDS epochs; wall µs per epoch after boot."""
    gs = [Guest(env, rd, "%s/bench%d.log" % (tmp, i), EPOCH_NS) for i in range(guests)]
    try:
        start = rounds // 4  # boot is ~470 epochs; measure well after it
        for r in range(rounds):
            for g in gs:
                if not g.held():
                    die("a guest's QEMU went away (consoles in %s)" % tmp)
            if r == start:
                t0 = time.monotonic()
            for g in gs:
                g.release()
        t1 = time.monotonic()
    finally:
        for g in gs:
            g.kill()
    for i in range(guests):
        with open("%s/bench%d.log" % (tmp, i), errors="replace") as f:
            if "sleeping" not in f.read():
                die("guest %d never reached its sleep (console in %s)" % (i, tmp))
    return (t1 - t0) / (rounds - start) * 1e6


def bench_detvm(tmp, guests, seconds):
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


def bench(env, tmp, rounds):
    if not os.access(os.path.join(ROOT, "bin", "detvm"), os.X_OK):
        die("bin/detvm missing; run make build first")
    rd = initrd(tmp, "sleep", SLEEP_INIT)
    print("%-7s %-34s %-34s %s" % ("guests", "held by QEMU: wall us per 1 ms", "detvm warp: wall us per 1 ms",
                                    "detvm / held"))
    for k in (1, 4):
        held = bench_held(env, rd, tmp, k, rounds)
        agent = bench_detvm(tmp, k, 3)
        print("%-7d %-34.1f %-34.1f %.1fx" % (k, held, agent, agent / held))


def probe(env, rd, tmp, name, hold_ns, qmp_ops=False, restore=None):
    """Run the probe guest to its poweroff; return its console output."""
    console = os.path.join(tmp, name + ".log")
    qmp = os.path.join(tmp, name + ".qmp") if (qmp_ops or restore) else None
    g = Guest(env, rd, console, hold_ns, qmp=qmp, incoming=bool(restore))
    try:
        if restore:
            g.qmp("migrate-incoming", uri="exec:cat " + restore)
            while g.qmp("query-status")["status"] not in ("paused", "running"):
                time.sleep(0.01)
            if g.qmp("query-status")["status"] == "paused":
                g.qmp("cont")
        holds = ops = 0
        while hold_ns and g.held():
            holds += 1
            if qmp_ops and holds % 97 == 0:
                if g.qmp("query-status")["status"] != "running":
                    die("%s: not running at hold %d" % (name, holds))
                g.qmp("stop")
                g.qmp("cont")
                ops += 1
            if qmp_ops and holds == 1500:
                g.qmp("migrate", uri="exec:cat > " + os.path.join(tmp, "held.mig"))
                while g.qmp("query-migrate").get("status") not in ("completed", "failed"):
                    time.sleep(0.01)
                if g.qmp("query-migrate")["status"] != "completed":
                    die("%s: migration during a hold failed" % name)
                g.qmp("cont")
                ops += 1
            g.release()
        if g.proc.wait(timeout=300) != 0:
            die("%s: QEMU exited %d" % (name, g.proc.returncode))
    finally:
        g.kill()
    with open(console, errors="replace") as f:
        out = f.read()
    if "done" not in out:
        die("%s: the probe did not finish (console %s)" % (name, console))
    print("  %-28s %5d holds, %2d QMP operations during holds, %3d console lines" %
          (name, holds, ops, out.count("\n")))
    return out


def wake(env, rd, tmp, name):
    """Run the wake probe, waking it at the holds in WAKE_AT; return its ktime lines."""
    console = os.path.join(tmp, name + ".log")
    g = Guest(env, rd, console, EPOCH_NS)
    try:
        holds = 0
        while g.held():
            holds += 1
            if holds in WAKE_AT:
                g.sock.send(b"W")
            else:
                g.release()
        g.proc.wait(timeout=300)
    finally:
        g.kill()
    with open(console, errors="replace") as f:
        lines = [line for line in f if line.startswith("now at")]
    if len(lines) != len(WAKE_AT):
        die("%s: %d wakes seen, want %d (console %s)" % (name, len(lines), len(WAKE_AT), console))
    print("  %-28s woken at holds %s: ktime %s" % (name, ", ".join(map(str, WAKE_AT)),
                                                   ", ".join(line.split()[2] for line in lines)))
    return lines


def check(env, tmp):
    rd = initrd(tmp, "probe", PROBE_INIT)
    print("the probe guest's console (ktime in ns, interrupt counts), run by run:")
    ref = probe(env, rd, tmp, "no holds", 0)
    runs = {
        "holds every 1 ms": probe(env, rd, tmp, "holds every 1 ms", EPOCH_NS),
        "holds every 0.3 ms": probe(env, rd, tmp, "holds every 0.3 ms", 300_000),
        "QMP during holds": probe(env, rd, tmp, "QMP during holds", EPOCH_NS, qmp_ops=True),
    }
    restored = probe(env, rd, tmp, "restored from hold 1500", EPOCH_NS,
                     restore=os.path.join(tmp, "held.mig"))
    bad = [n for n, out in runs.items() if out != ref]
    tail = ref.splitlines(True)[-restored.count("\n"):]
    if restored.count("\n") == 0 or "".join(tail) != restored:
        bad.append("restored from hold 1500 (against the same lines at the end of no holds)")
    if bad:
        print("DIFFERENT from the run without holds: " + "; ".join(bad) + " (consoles in %s)" % tmp)
        sys.exit(1)
    print("identical: holds are invisible to the guest, and a snapshot taken during a hold continues the same run")
    print("\nthe wake probe (blocked on ttyS1), twice:")
    rd = initrd(tmp, "wake", WAKE_INIT)
    first = wake(env, rd, tmp, "wake")
    hogs = [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _ in range(2)]
    try:
        second = wake(env, rd, tmp, "wake under a CPU hog")
    finally:
        for h in hogs:
            h.kill()
    if first != second:
        print("DIFFERENT: the wakes moved with host load (consoles in %s)" % tmp)
        sys.exit(1)
    print("identical: a wake lands at the same guest instruction whatever the host load")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "bench"
    if mode not in ("bench", "check"):
        die("usage: hold-experiment.py bench [ROUNDS] | check")
    kernels = sorted(glob.glob(os.path.join(CACHE, "kernel", "*", "vmlinux-*")))
    if not kernels:
        die("no unpacked guest kernel in %s/kernel; run any scenario once (make demo)" % CACHE)
    qemu = subprocess.run(["bash", os.path.join(ROOT, "scripts", "build-qemu.sh")],
                          env=dict(os.environ, DETVM_QEMU_PRINT_PATH="1"),
                          stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    env = {"qemu": qemu, "kernel": kernels[-1]}
    print("kernel %s\nQEMU   %s\n" % (kernels[-1], qemu))
    tmp = tempfile.mkdtemp(prefix="detvm-hold-")
    if mode == "bench":
        bench(env, tmp, int(sys.argv[2]) if len(sys.argv) > 2 else 6000)
    else:
        check(env, tmp)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
