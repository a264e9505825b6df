package vmm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// Machine is one running QEMU guest.
type Machine struct {
	cfg     Config
	cmd     *exec.Cmd
	qmp     *Monitor
	barrier net.Conn
	shared  []byte
	page    *wire.Page
	exited  chan struct{}
	waitErr error
	stderr  bytes.Buffer // written by exec until Wait returns; read only after exited
}

// ErrExited reports that QEMU is gone.
var ErrExited = errors.New("QEMU exited")

// ErrTimeout reports that the guest did not reach a barrier in time.
var ErrTimeout = errors.New("guest did not reach its next barrier in time")

// Start validates cfg, creates the shared page, starts QEMU and completes the
// QMP handshake. Each step is named in its error ("vmm: start node-1: qmp
// handshake: ..."). QEMU runs in its own process group and gets SIGKILL if
// the controller dies, so no QEMU outlives its controller.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, exited: make(chan struct{})}
	step := func(name string, err error) error {
		m.Kill()
		return fmt.Errorf("vmm: start %s: %s: %w", cfg.Name, name, err)
	}
	if err := m.mapShared(); err != nil {
		return nil, step("shared page", err)
	}
	if err := m.prepareDisk(); err != nil {
		return nil, step("disk", err)
	}
	qmpHost, qmpGuest, err := socketPair()
	if err != nil {
		return nil, step("qmp socket", err)
	}
	barHost, barGuest, err := socketPair()
	if err != nil {
		return nil, step("barrier socket", err)
	}
	argv := cfg.CommandLine()
	m.cmd = exec.Command(argv[0], argv[1:]...)
	m.cmd.ExtraFiles = []*os.File{qmpGuest, barGuest} // fds 3 and 4
	if env := cfg.Env(); env != nil {
		m.cmd.Env = append(os.Environ(), env...)
	}
	m.cmd.Stderr = &m.stderr
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = m.cmd.Start()
	qmpGuest.Close()
	barGuest.Close()
	if err != nil {
		return nil, step("exec", err)
	}
	go func() { m.waitErr = m.cmd.Wait(); close(m.exited) }()
	if m.barrier, err = net.FileConn(barHost); err != nil {
		return nil, step("barrier socket", err)
	}
	barHost.Close()
	qc, err := net.FileConn(qmpHost)
	qmpHost.Close()
	if err != nil {
		return nil, step("qmp socket", err)
	}
	m.qmp = NewMonitor(qc)
	hs := make(chan error, 1)
	go func() { hs <- m.qmp.Connect() }()
	select {
	case err = <-hs:
	case <-m.exited:
		err = m.exitError()
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return nil, step("qmp handshake", err)
	}
	return m, nil
}

func socketPair() (host, guest *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest"), nil
}

func (m *Machine) mapShared() error {
	f, err := os.OpenFile(m.cfg.Shared, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(wire.Size); err != nil {
		return err
	}
	b, err := unix.Mmap(int(f.Fd()), 0, wire.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	m.shared = b
	m.page, err = wire.NewPage(b)
	return err
}

// Name is the node's name.
func (m *Machine) Name() string { return m.cfg.Name }

// Page is the shared page. Touch it only while the guest is held.
func (m *Machine) Page() *wire.Page { return m.page }

// QMP is the machine's monitor.
func (m *Machine) QMP() *Monitor { return m.qmp }

// Exited is closed when QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// WaitBarrier blocks until the guest executes its barrier and is held, or
// QEMU exits, or timeout (wall time: a watchdog, never an input) passes.
func (m *Machine) WaitBarrier(timeout time.Duration) error {
	if err := m.barrier.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	var b [1]byte
	_, err := m.barrier.Read(b[:])
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	default:
		// The plugin's end closes only when QEMU dies.
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
		}
		return m.exitError()
	}
}

// Release lets a held guest run on.
func (m *Machine) Release() error { return m.release('R') }

// Wake lets a held guest run on and, when QEMU holds it (Config.HoldNS),
// puts a newline into its wake port at the held instant, so that a process
// blocked reading it (the agent) wakes. With the plugin's barrier it is
// Release: the agent there looks at the page after every barrier anyway.
func (m *Machine) Wake() error { return m.release('W') }

func (m *Machine) release(b byte) error {
	if _, err := m.barrier.Write([]byte{b}); err != nil {
		return fmt.Errorf("vmm: release %s: %w", m.cfg.Name, err)
	}
	return nil
}

// Holds reports whether QEMU holds this guest at virtual-time boundaries
// (Config.HoldNS) rather than at the guest's barrier instruction.
func (m *Machine) Holds() bool { return m.cfg.HoldNS > 0 }

func (m *Machine) exitError() error {
	select {
	case <-m.exited:
	default:
		return fmt.Errorf("%w (barrier socket closed)", ErrExited)
	}
	msg := bytes.TrimSpace(m.stderr.Bytes())
	if len(msg) > 500 {
		msg = msg[len(msg)-500:]
	}
	if len(msg) > 0 {
		return fmt.Errorf("%w: %v: %s", ErrExited, m.waitErr, msg)
	}
	return fmt.Errorf("%w: %v", ErrExited, m.waitErr)
}

// Kill ends QEMU (SIGKILL to its process group) and releases host
// resources. Safe to call more than once and on a half-started machine.
func (m *Machine) Kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
	if m.qmp != nil {
		m.qmp.Disconnect()
	}
	if m.barrier != nil {
		m.barrier.Close()
	}
	if m.shared != nil {
		_ = unix.Munmap(m.shared)
		m.shared, m.page = nil, nil
	}
}

// PauseHeld stops the vCPU of a guest held at a barrier. It is
// BeginPause followed by its wait.
func (m *Machine) PauseHeld(ctx context.Context) error {
	wait, err := m.BeginPause(ctx)
	if err != nil {
		return err
	}
	return wait(ctx)
}

// ErrPauseRace reports that a guest reached its next barrier before its
// vCPU paused: the pause landed an epoch late, so the cut is not
// consistent. BeginPause is built so that this cannot happen; it is
// checked anyway, because a silent late pause would be a wrong snapshot.
var ErrPauseRace = errors.New("guest reached its next barrier before the pause took effect")

// BeginPause starts pausing a guest held at a barrier and returns the wait
// for the pause to complete. QMP "stop" cannot complete while the vCPU
// thread is blocked in the barrier callback (DESIGN.md, measured), so the
// order is: send stop, release the barrier, wait.
//
// Released too early, the guest could run a whole epoch and reach its
// next barrier before QEMU's main loop even reads the stop: the pause
// would then wait on a held vCPU, an epoch late. So between send and
// release BeginPause waits until QEMU's main thread is blocked in a futex
// (Linux reports it in /proc/PID/syscall): with the vCPU held and the
// guest otherwise quiet, that is pause_all_vcpus waiting for the vCPU,
// after it has set the vCPU's stop flag and kicked it. Released then, the
// vCPU stops at its next translation-block boundary, a few instructions
// after the barrier. Under icount where it stops is invisible to the
// guest, which resumes on the same path after "cont".
//
// A guest QEMU holds (Config.HoldNS) needs none of this: its vCPU thread
// sleeps during a hold, so "stop" completes at once, and the guest stays
// held (released later by Release or Wake, before or after "cont").
func (m *Machine) BeginPause(ctx context.Context) (wait func(context.Context) error, err error) {
	w, err := m.qmp.Send("stop", nil)
	if err != nil {
		return nil, fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, err)
	}
	if m.Holds() {
		return func(ctx context.Context) error {
			if _, err := w(ctx); err != nil {
				return fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, err)
			}
			return nil
		}, nil
	}
	if err := m.waitMainBlocked(ctx); err != nil {
		return nil, fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, err)
	}
	if err := m.Release(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		// A barrier byte while the stop is pending means the race was
		// lost; nothing else can write to this socket now.
		_ = m.barrier.SetReadDeadline(time.Time{})
		arrived := make(chan bool, 1)
		go func() {
			var b [1]byte
			n, _ := m.barrier.Read(b[:])
			arrived <- n == 1
		}()
		done := make(chan error, 1)
		go func() { _, err := w(ctx); done <- err }()
		select {
		case err := <-done:
			// Unblock the watcher: a deadline in the past ends its Read.
			_ = m.barrier.SetReadDeadline(time.Unix(1, 0))
			if <-arrived {
				return fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, ErrPauseRace)
			}
			if err != nil {
				return fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, err)
			}
			return nil
		case <-arrived:
			return fmt.Errorf("vmm: pause %s: %w", m.cfg.Name, ErrPauseRace)
		}
	}, nil
}

// futexSyscall is futex(2)'s number on x86-64, the only host detvm runs on.
const futexSyscall = "202"

// waitMainBlocked waits until QEMU's main thread has been blocked in a
// futex for several consecutive looks spread over at least a millisecond,
// so that a passing lock wait is not mistaken for the pause.
func (m *Machine) waitMainBlocked(ctx context.Context) error {
	path := fmt.Sprintf("/proc/%d/syscall", m.cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	var since time.Time
	looks := 0
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("watching QEMU's main thread: %w", err)
		}
		nr, _, _ := strings.Cut(string(b), " ")
		if nr == futexSyscall {
			if looks == 0 {
				since = time.Now()
			}
			looks++
			if looks >= 3 && time.Since(since) >= time.Millisecond {
				return nil
			}
		} else {
			looks = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.exited:
			return m.exitError()
		case <-time.After(200 * time.Microsecond):
		}
		if time.Now().After(deadline) {
			return errors.New("QEMU's main loop did not act on stop within 30 s")
		}
	}
}

// Status is QMP query-status's "status" (running, paused, …).
func (m *Machine) Status(ctx context.Context) (string, error) {
	raw, err := m.qmp.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}
