//go:build linux

package agent

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// Fault commands (wire.Command) arrive in the shared page and are executed
// on the epoch thread right after the barrier returns, one after another,
// before anything else the agent does in the new epoch (see runCommands).
// Each is reported as one KindFault event; wire.Command lists the ops and
// the exact lines. Nothing a command does is fatal to the agent.

// kernel is what fault commands do to the guest. The agent uses sysKernel;
// tests record the calls instead.
type kernel interface {
	// signal sends sig to the process group pgid.
	signal(pgid int, sig unix.Signal) error
	// write writes a cgroup control file.
	write(path, data string) error
	// clockStep moves CLOCK_REALTIME by deltaNS.
	clockStep(deltaNS int64) error
	// clockFreq sets the clock frequency offset in ppm.
	clockFreq(ppm int64) error
}

type sysKernel struct{}

func (sysKernel) signal(pgid int, sig unix.Signal) error { return unix.Kill(-pgid, sig) }

func (sysKernel) write(path, data string) error { return os.WriteFile(path, []byte(data), 0) }

// clockStep reads, adds and sets: inside the deterministic guest nothing
// can happen between the two calls that depends on the host.
func (sysKernel) clockStep(deltaNS int64) error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return err
	}
	now := ts.Nano()
	t := now + deltaNS
	if (deltaNS > 0 && t < now) || (deltaNS < 0 && t > now) || t < 0 {
		return errors.New("time out of range")
	}
	ts = unix.NsecToTimespec(t)
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}

func (sysKernel) clockFreq(ppm int64) error {
	// Timex.Freq is in ppm with a 16-bit fraction.
	tx := unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: ppm << 16}
	_, err := unix.Adjtimex(&tx)
	return err
}

// faultOp carries out one command and returns the event's Proc and line.
type faultOp func(a *agent, c wire.Command) (proc, line string)

// faultOps is the dispatch table, by wire.Command.Op.
var faultOps = map[string]faultOp{
	wire.OpKill:      signalOp(unix.SIGKILL),
	wire.OpStop:      signalOp(unix.SIGSTOP),
	wire.OpCont:      signalOp(unix.SIGCONT),
	wire.OpRestart:   (*agent).restart,
	wire.OpCPUMax:    (*agent).setCPUMax,
	wire.OpFreeze:    freezeOp("1"),
	wire.OpThaw:      freezeOp("0"),
	wire.OpClockStep: (*agent).clockStep,
	wire.OpClockFreq: (*agent).clockFreq,
}

// runCommands executes the commands the controller wrote at this barrier
// (taken by wakeWork). It runs on the wake thread right after the barrier
// returns (or the hold that woke the agent ended), before the
// frames of the new epoch are handed to the kernel: a fault decided at the
// boundary of epochs k and k+1 is in place before anything of epoch k+1
// happens in the guest — the signal is pending, the cgroup limit set, the
// clock stepped (so the receive timestamps of those frames already show
// it) — and the order is one fixed rule the controller can rely on.
func (a *agent) runCommands(raw []byte) {
	if len(raw) == 0 {
		return
	}
	cmds, err := wire.DecodeCommands(raw)
	for _, c := range cmds {
		proc, line := a.execute(c)
		who := ""
		if proc != "" {
			who = " " + proc
		}
		a.console(fmt.Sprintf("fault %d%s: %s", c.Fault, who, line))
		a.emit(wire.Event{Kind: wire.KindFault, Proc: proc, Code: int32(c.Fault), Data: []byte(line)})
	}
	if err != nil {
		// The commands before the bad record ran; the rest are lost.
		a.logf("commands: %v", err)
	}
}

// execute dispatches one command.
func (a *agent) execute(c wire.Command) (proc, line string) {
	op, ok := faultOps[c.Op]
	if !ok {
		return c.Proc, fmt.Sprintf("%q: unknown op", c.Op)
	}
	return op(a, c)
}

// target resolves a command's Proc: the process, or why there is none.
func (a *agent) target(c wire.Command) (p *proc, name, fail string) {
	if c.Proc == "" {
		if a.main == nil {
			return nil, "", c.Op + ": no main process"
		}
		return a.main, a.main.spec.Name, ""
	}
	for _, p := range a.procs {
		if p.spec.Name == c.Proc {
			return p, c.Proc, ""
		}
	}
	return nil, c.Proc, fmt.Sprintf("%s: no process %q", c.Op, c.Proc)
}

// signalOp sends sig to the process group of a running process. A kill
// marks the instance as fault-killed, so its exit does not finish it.
func signalOp(sig unix.Signal) faultOp {
	return func(a *agent, c wire.Command) (string, string) {
		p, name, fail := a.target(c)
		if p == nil {
			return name, fail
		}
		a.pmu.Lock()
		defer a.pmu.Unlock()
		// Only while not reaped: until then the pid, and with it the
		// group id, cannot be reused.
		if !p.running() {
			return name, c.Op + ": not running"
		}
		pid := p.cur.pid
		if err := a.k.signal(pid, sig); err != nil {
			return name, fmt.Sprintf("%s pid %d: %v", c.Op, pid, err)
		}
		if sig == unix.SIGKILL {
			p.cur.faulted = true
		}
		return name, fmt.Sprintf("%s pid %d", c.Op, pid)
	}
}

// restart starts a process again if it is not running. A command the agent
// has not reached yet is left to its turn.
func (a *agent) restart(c wire.Command) (string, string) {
	p, name, fail := a.target(c)
	if p == nil {
		return name, fail
	}
	a.pmu.Lock()
	defer a.pmu.Unlock()
	switch {
	case !p.started:
		return name, "restart: not started"
	case p.running():
		return name, "restart: already running"
	}
	if err := a.start(p); err != nil {
		return name, "restart: " + err.Error()
	}
	return name, fmt.Sprintf("restart pid %d", p.cur.pid)
}

func (a *agent) setCPUMax(c wire.Command) (string, string) {
	p, name, fail := a.target(c)
	if p == nil {
		return name, fail
	}
	line := "cpu-max " + strconv.FormatFloat(c.Ratio, 'g', -1, 64)
	v, err := cpuMax(c.Ratio)
	if err == nil {
		err = a.writeCgroup(p, "cpu.max", v)
	}
	if err != nil {
		line += ": " + err.Error()
	}
	return name, line
}

func freezeOp(v string) faultOp {
	return func(a *agent, c wire.Command) (string, string) {
		p, name, fail := a.target(c)
		if p == nil {
			return name, fail
		}
		if err := a.writeCgroup(p, "cgroup.freeze", v); err != nil {
			return name, c.Op + ": " + err.Error()
		}
		return name, c.Op
	}
}

// writeCgroup writes one of p's cgroup files. A cgroup outlives the
// process's instances, so this needs no process running.
func (a *agent) writeCgroup(p *proc, file, v string) error {
	if p.cgroup == "" {
		return errors.New("no cgroup")
	}
	return a.k.write(p.cgroup+"/"+file, v)
}

func (a *agent) clockStep(c wire.Command) (string, string) {
	line := "clock-step " + signedDuration(c.DeltaNS)
	if err := a.k.clockStep(c.DeltaNS); err != nil {
		line += ": " + err.Error()
	}
	return "", line
}

func (a *agent) clockFreq(c wire.Command) (string, string) {
	line := fmt.Sprintf("clock-freq %sppm", signed(c.PPM))
	if c.PPM < -wire.MaxClockPPM || c.PPM > wire.MaxClockPPM {
		return "", fmt.Sprintf("%s: beyond ±%dppm", line, wire.MaxClockPPM)
	}
	if err := a.k.clockFreq(c.PPM); err != nil {
		line += ": " + err.Error()
	}
	return "", line
}

// signed formats n with its sign, "0" without.
func signed(n int64) string {
	if n > 0 {
		return "+" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// signedDuration formats ns as a duration with its sign: "+5s", "-1.5ms",
// "0s".
func signedDuration(ns int64) string {
	if ns > 0 {
		return "+" + time.Duration(ns).String()
	}
	return time.Duration(ns).String()
}

// wakeAt is when the epoch thread sleeps until before its next barrier:
// origin is the guest's CLOCK_MONOTONIC at the epoch boundary that
// corresponds to controller epoch base, so epoch e begins e-base epochs
// later (wire.Page.Base). An epoch at or before base does not sleep, and a
// time beyond the clock's range sleeps "forever" rather than wrapping.
func wakeAt(origin, epoch, base, epochNS uint64) uint64 {
	const end = math.MaxInt64 // clock_nanosleep takes a signed time
	if epoch <= base {
		return origin
	}
	n := epoch - base
	if origin >= end || (epochNS != 0 && n > (end-origin)/epochNS) {
		return end
	}
	return origin + n*epochNS
}
