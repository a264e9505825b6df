//go:build linux

// Package agent is detvm's PID 1 inside every guest. It prepares the guest,
// starts the node's processes, reports what they do through the shared page,
// and takes what the controller left there when it is woken.
//
// Two ways to meet the controller at epoch boundaries (wire.Config.Hold):
//   - Hold: detvm's QEMU holds the guest at every boundary of virtual time,
//     whatever it is doing, and the agent sleeps until the controller wakes
//     it (a newline on /dev/ttyS1, put there at a hold). An idle guest then
//     does no work at all between the epochs it has nothing in.
//   - Barrier: on a QEMU without the hold, the agent wakes at every epoch
//     boundary of its CLOCK_MONOTONIC and executes the barrier instruction.
//
// Either way the agent publishes events and frames to the page as they
// come (publish), and takes commands and frames after each barrier it is
// woken from (wakeWork).
//
// Everything here runs inside the deterministic guest, so goroutine
// scheduling, timers and pipe reads are all functions of the run; the agent
// only must never depend on anything that crosses from the host outside a
// barrier. It is built static (CGO_ENABLED=0) and imports no host package.
package agent

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
	"github.com/detvm/detvm/workload/sdk"
)

// Main is the entry point of /init. It never returns: PID 1 must not exit.
func Main() {
	if filepath.Base(os.Args[0]) == "detvm-sdk" {
		// The same binary is /bin/detvm-sdk, the SDK's shell helper.
		os.Exit(sdk.CLI(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "spin" {
		spin()
	}
	a := newAgent()
	if err := a.run(); err != nil {
		// Before the first barrier the controller can only see the console
		// and QEMU's exit; powering off makes the failure immediate rather
		// than a watchdog timeout.
		a.logf("fatal: %v", err)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	select {} // the controller ends the run at a barrier
}

type agent struct {
	cfg  wire.Config
	page *wire.Page

	tun  *os.File   // nil without a network
	sdk  *sdkServer // nil until the SDK socket is up (sdk.go)
	test *testRun   // the test composer; nil without a test (composer.go)

	k     kernel              // what fault commands act on
	start func(p *proc) error // starts an instance of p, pmu held: startProc
	sigc  chan os.Signal      // SIGCHLD, for the reaper

	mu        sync.Mutex
	pending   []byte // encoded events not yet in the shared page
	pendingTX []byte // encoded frames read from the TUN, not yet in the page

	// pubMu serialises publish, so the state it writes is never older
	// than one already written. Lock order: pubMu, pmu, mu.
	pubMu   sync.Mutex
	kickc   chan struct{} // non-empty: the publisher has work
	started atomic.Bool   // the seed has arrived and processes may run
	mixed   uint64        // the branch seed mixed in last; wake thread only

	// pmu guards the process table. It is held across starting a process
	// and across reaping, so a child that exits at once is registered
	// before it is reaped. Lock order: pmu, then mu.
	pmu   sync.Mutex
	procs []*proc // Main, then the commands, in Config order
	main  *proc   // nil without a main process
	cmds  []*proc
	byPID map[int]*instance // instances not yet reaped
}

func newAgent() *agent {
	a := &agent{k: sysKernel{}, byPID: make(map[int]*instance), kickc: make(chan struct{}, 1)}
	a.start = a.startProc
	return a
}

func (a *agent) run() error {
	if err := mountAll(); err != nil {
		return err
	}
	b, err := os.ReadFile(wire.ConfigPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &a.cfg); err != nil {
		return fmt.Errorf("%s: %w", wire.ConfigPath, err)
	}
	if err := unix.Sethostname([]byte(a.cfg.Node)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := loUp(); err != nil {
		return err
	}
	cgroups := true
	if err := setupCgroups(); err != nil {
		// The node runs; only cpu-max and freeze commands will fail.
		a.logf("no cgroups: %v", err)
		cgroups = false
	}
	for _, m := range a.cfg.Modules {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	if err := mountDisk(a.cfg.Disk); err != nil {
		return err
	}
	// Registered before the first barrier, so no barrier can report
	// "done" before the processes have even started.
	a.addProcs(cgroups)
	// Before any process starts, so no exit goes unnoticed.
	a.sigc = make(chan os.Signal, 16)
	signal.Notify(a.sigc, unix.SIGCHLD)
	if a.cfg.Net != nil {
		if a.tun, err = setupNet(a.cfg.Net); err != nil {
			return err
		}
	}
	page, err := mapShared()
	if err != nil {
		return err
	}
	a.page = page
	a.page.Init()
	if !a.cfg.Halt {
		if err := startSpinner(); err != nil {
			return err
		}
	}
	if err := a.listenSDK(); err != nil {
		// The node runs; SDK messages fall back to the senders' stderr.
		a.logf("sdk: no socket: %v", err)
	}
	if a.cfg.Hold {
		wake, err := openWake()
		if err != nil {
			return err
		}
		// Ready: the controller wakes the agent with the seed in the page.
		a.publish()
		if err := waitWake(wake); err != nil {
			return err
		}
		a.wakeWork()
		go a.wakeLoop(wake)
	} else {
		ready := make(chan struct{})
		go a.epochLoop(ready)
		<-ready
	}
	// The seed arrives at the first barrier, so the image is seed-free.
	if err := mixRNG("detvm-rng-v1:", a.page.Seed()); err != nil {
		return err
	}
	a.started.Store(true)
	a.logf("seeded kernel rng")
	go a.publisher()
	if a.tun != nil {
		go a.readTUN()
	}
	a.supervise()
	return nil
}

// kick tells the publisher there is something to publish.
func (a *agent) kick() {
	select {
	case a.kickc <- struct{}{}:
	default:
	}
}

// publisher writes events, frames and the agent's state to the page as
// soon as they change, so that a hold (which does not wake the agent)
// finds them there. It runs at real-time priority: what a busy process
// delays is then only what the guest's own scheduler decides.
func (a *agent) publisher() {
	lockRT(49)
	for range a.kickc {
		a.publish()
	}
}

// publish moves pending events and frames into the page, as many whole
// records as fit, and writes the agent's state. StateDone is written only
// when every event is in the page, so the controller sees every exit of a
// node it finds done.
func (a *agent) publish() {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	state := wire.StateReady
	if a.started.Load() {
		state = wire.StateRunning
		if a.waiting() == 0 {
			state = wire.StateDone
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.page
	p.Enter()
	a.pending = a.pending[p.AppendOut(a.pending):]
	a.pendingTX = a.pendingTX[p.AppendTX(a.pendingTX):]
	more := len(a.pending) > 0 || len(a.pendingTX) > 0
	if more && state == wire.StateDone {
		state = wire.StateRunning
	}
	p.SetMore(more)
	p.SetMonoNS(monoNS())
	p.SetState(state)
	p.Leave()
}

// wakeWork takes what the controller left in the page at the barrier the
// agent was just woken from, and acts on it: the fault commands first,
// then the frames, then a new branch seed.
func (a *agent) wakeWork() {
	a.mu.Lock()
	p := a.page
	p.Enter()
	cmds, cerr := p.TakeCmd()
	rx, rerr := p.TakeRX()
	branch := p.Branch()
	p.Leave()
	// The controller emptied the regions: room for what did not fit.
	// (Only then: in idle mode spin a kick per epoch would wake the
	// publisher's thread at every barrier, for nothing.)
	more := len(a.pending) > 0 || len(a.pendingTX) > 0
	a.mu.Unlock()
	if cerr != nil {
		a.logf("commands: %v", cerr)
	}
	if rerr != nil {
		a.logf("rx: %v", rerr)
	}
	a.runCommands(cmds)
	a.deliverRX(rx)
	if branch != a.mixed {
		// A branch: everything random from here on follows the branch
		// seed (RNDADDENTROPY mixes, it does not replace).
		a.mixed = branch
		if err := mixRNG("detvm-branch-v1:", branch); err != nil {
			a.logf("branch seed: %v", err)
		}
	}
	if more {
		a.kick()
	}
}

// lockRT pins the calling goroutine to its thread and gives the thread
// real-time priority prio. RESET_ON_FORK: a process a restart command
// starts from this thread must not inherit it (nor could it then enter a
// cgroup with the cpu controller).
func lockRT(prio uint32) {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: prio, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		fmt.Fprintf(os.Stdout, "detvm-agent: thread stays SCHED_OTHER: %v\n", err)
	}
}

// wakePort is the serial port QEMU puts a newline into when the controller
// wakes the guest at a hold (vmm.Config.HoldNS).
const wakePort = "/dev/ttyS1"

// openWake opens the wake port raw (no echo back into QEMU, no line
// discipline holding bytes back), blocking.
func openWake() (int, error) {
	fd, err := unix.Open(wakePort, unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("wake port: %w", err)
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wake port: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD | unix.B115200
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("wake port: %w", err)
	}
	// A 16550A raises its receive interrupt at once only when its FIFO
	// holds the trigger level (8 bytes by default); one byte waits for the
	// character timeout, 4 character times: 4 ms at 9600 baud, which would
	// be the latency of every wake. Trigger at 1 byte (and 115200 baud
	// bounds the timeout to 0.35 ms should the attribute be missing).
	if err := os.WriteFile("/sys/class/tty/ttyS1/rx_trig_bytes", []byte("1"), 0); err != nil {
		fmt.Fprintf(os.Stdout, "detvm-agent: wake port: rx_trig_bytes: %v\n", err)
	}
	return fd, nil
}

// waitWake blocks until the controller wakes the guest.
func waitWake(fd int) error {
	var buf [64]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("wake port: %w", err)
		case n == 0:
			return fmt.Errorf("wake port: end of file")
		}
		return nil
	}
}

// wakeLoop does the agent's part of every barrier it is woken from.
func (a *agent) wakeLoop(fd int) {
	lockRT(50)
	for {
		if err := waitWake(fd); err != nil {
			// Nothing reaches this guest any more; its processes run on
			// and the controller still sees what they publish.
			a.logf("%v", err)
			return
		}
		a.wakeWork()
	}
}

// epochLoop wakes at every epoch boundary of guest CLOCK_MONOTONIC,
// publishes and executes the barrier; after it, the wake work. It runs on
// its own OS thread at real-time priority so that a busy process delays it
// only as the guest's own scheduler decides.
func (a *agent) epochLoop(ready chan<- struct{}) {
	lockRT(50)
	epochNS := a.cfg.EpochNS
	origin := uint64(0)
	for {
		now := monoNS()
		a.drainSDK() // what was sent before the barrier belongs to it
		a.publish()
		barrier()
		a.wakeWork()
		if ready != nil {
			// The ready barrier; later boundaries are counted from the
			// next one, which is controller epoch Base (0 at boot).
			origin = (now/epochNS + 1) * epochNS
			close(ready)
			ready = nil
		}
		sleepUntil(wakeAt(origin, a.page.Epoch(), a.page.Base(), epochNS))
	}
}

func (a *agent) emit(e wire.Event) {
	e.MonoNS = monoNS()
	a.mu.Lock()
	a.pending = wire.AppendEvent(a.pending, e)
	a.mu.Unlock()
	a.kick()
}

// logf writes a line to the console and reports it as a KindLog event.
func (a *agent) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.console(msg)
	if a.page != nil {
		a.emit(wire.Event{Kind: wire.KindLog, Data: []byte(msg)})
	}
}

// console writes a line to the console only.
func (a *agent) console(msg string) {
	t := monoNS()
	fmt.Fprintf(os.Stdout, "[%5d.%06d] detvm-agent: %s\n", t/1e9, t%1e9/1e3, msg)
}

func monoNS() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func sleepUntil(ns uint64) {
	ts := unix.NsecToTimespec(int64(ns))
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
	}
}

func mountAll() error {
	for _, m := range []struct{ src, dst, fs, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"cgroup2", cgroupRoot, "cgroup2", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fs, 0, m.data); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	return nil
}

func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

// mapShared finds the ivshmem-plain device (1af4:1110), enables it and maps
// its BAR 2, which QEMU backs with the controller's file.
func mapShared() (*wire.Page, error) {
	devs, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		dir := "/sys/bus/pci/devices/" + d.Name()
		v, _ := os.ReadFile(dir + "/vendor")
		id, _ := os.ReadFile(dir + "/device")
		if strings.TrimSpace(string(v)) != "0x1af4" || strings.TrimSpace(string(id)) != "0x1110" {
			continue
		}
		if err := os.WriteFile(dir+"/enable", []byte("1"), 0); err != nil {
			return nil, fmt.Errorf("enable %s: %w", dir, err)
		}
		f, err := os.OpenFile(dir+"/resource2", os.O_RDWR|unix.O_SYNC, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := unix.Mmap(int(f.Fd()), 0, wire.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("mmap %s/resource2: %w", dir, err)
		}
		return wire.NewPage(b)
	}
	return nil, fmt.Errorf("no ivshmem device (1af4:1110) in /sys/bus/pci/devices")
}

// mixRNG credits the kernel RNG with entropy derived from a seed only, so
// /dev/urandom and getrandom are functions of the run seed (and of the
// branch seeds mixed in later). RDRAND is off in the guest CPU model, so
// nothing else in the guest is random.
func mixRNG(domain string, seed uint64) error {
	var in [8]byte
	binary.LittleEndian.PutUint64(in[:], seed)
	sum := sha512.Sum512(append([]byte(domain), in[:]...))
	var info struct {
		bits, size int32
		buf        [64]byte
	}
	info.bits, info.size, info.buf = 512, 64, sum
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const rndAddEntropy = 0x40085203 // _IOW('R', 0x03, int[2])
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&info))); e != 0 {
		return fmt.Errorf("RNDADDENTROPY: %w", e)
	}
	return nil
}

// startSpinner starts an idle-priority process that never blocks, so the
// vCPU never executes HLT: QEMU's icount warp after a HLT can read a stale
// clock and break determinism (DESIGN.md, "Second spike").
func startSpinner() error {
	p, err := os.StartProcess("/proc/self/exe", []string{"detvm-spin", "spin"}, &os.ProcAttr{
		Files: []*os.File{nil, os.Stdout, os.Stderr},
		Env:   []string{"GOMAXPROCS=1"},
	})
	if err != nil {
		return fmt.Errorf("spinner: %w", err)
	}
	return p.Release()
}

func spin() {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	_ = unix.SchedSetAttr(0, &attr, 0)
	//lint:ignore SA5002 spinning at idle priority is the point: the vCPU must never halt
	for {
	}
}
