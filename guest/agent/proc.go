//go:build linux

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
	"github.com/detvm/detvm/workload/sdk"
)

// maxLine bounds one output event; longer lines are split.
const maxLine = 4096

// proc is one named process of the node's Config (Main or a command) and
// what the agent knows of it. Fault commands address processes by name, so
// the agent keeps the spec to start it again. Guarded by agent.pmu.
type proc struct {
	spec   wire.Proc
	cgroup string // its cgroup v2 directory, "" when it has none

	started bool      // a start was attempted (and maybe failed)
	cur     *instance // the latest instance; nil if no start succeeded
	live    int       // instances not done: running, or exited with output still draining

	fin     chan struct{} // closed when the process first finishes (see waitedFor)
	finDone bool

	// exited, if set, is called after each instance's exit has been
	// reported and accounted for (the test composer's, composer.go).
	exited func(pid, code int)
}

// instance is one run of a proc, from start to reaping.
type instance struct {
	pid     int
	exited  bool     // reaped
	faulted bool     // a kill command hit it
	reaped  chan int // the exit code, from the reaper
}

func (p *proc) running() bool { return p.cur != nil && !p.cur.exited }

// waitedFor reports whether the run still waits for p. A daemon is never
// waited for. Any other process is, until it has been started and its
// latest instance has exited (output drained) without being killed by a
// fault: a fault-killed process is down, not finished, and a restarted one
// is waited for again.
func (p *proc) waitedFor() bool {
	if p.spec.Daemon {
		return false
	}
	return !p.started || p.live > 0 || (p.cur != nil && p.cur.faulted)
}

// settle closes p.fin the first time p is no longer waited for. pmu held.
func (p *proc) settle() {
	if !p.finDone && !p.waitedFor() {
		p.finDone = true
		close(p.fin)
	}
}

// addProcs registers Main and the commands, each with its cgroup. It runs
// before the first barrier, so the first barrier already waits for every
// non-daemon process and commands can address them from then on.
func (a *agent) addProcs(cgroups bool) {
	add := func(spec wire.Proc) *proc {
		p := &proc{spec: spec, fin: make(chan struct{})}
		for _, q := range a.procs {
			if q.spec.Name == spec.Name {
				a.logf("process name %q used twice: commands address the first", spec.Name)
			}
		}
		if cgroups {
			dir, err := makeCgroup(spec.Name)
			if err != nil {
				a.logf("%s: no cgroup, cpu-max and freeze will fail: %v", spec.Name, err)
			}
			p.cgroup = dir
		}
		a.procs = append(a.procs, p)
		return p
	}
	if a.cfg.Main != nil {
		a.main = add(*a.cfg.Main)
	}
	for _, c := range a.cfg.Commands {
		a.cmds = append(a.cmds, add(c))
	}
	a.addTest()
}

// waiting counts the processes the run still waits for.
func (a *agent) waiting() int {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	n := 0
	for _, p := range a.procs {
		if p.waitedFor() {
			n++
		}
	}
	return n + a.testWaiting()
}

// supervise starts the node's main process and its commands, then its
// test (composer.go), and reaps every child (PID 1 inherits orphans). It
// never returns.
func (a *agent) supervise() {
	origin := monoNS() // the test composer's time 0
	if a.main != nil {
		a.startFirst(a.main)
	}
	go func() {
		for _, p := range a.cmds {
			time.Sleep(time.Duration(p.spec.AfterNS))
			a.startFirst(p)
			if !p.spec.Daemon {
				// Through fault kills and restarts, until it has
				// really finished.
				<-p.fin
			}
		}
		a.compose(origin)
	}()
	for range a.sigc {
		a.reap()
	}
}

// startFirst starts p as the Config says; a failure counts as an exit with
// status 127.
func (a *agent) startFirst(p *proc) {
	a.pmu.Lock()
	err := a.start(p)
	if err != nil {
		p.started = true
		p.settle()
	}
	a.pmu.Unlock()
	if err != nil {
		a.emit(wire.Event{Kind: wire.KindExit, Proc: p.spec.Name, Code: 127, Data: []byte(err.Error())})
		a.logf("%s: %v", p.spec.Name, err)
	}
}

// reap collects every exited child. Holding pmu across wait4 means a child
// that exits at once is not reaped before start has registered its pid.
func (a *agent) reap() {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = -int(ws.Signal())
		}
		a.reapedLocked(pid, code)
	}
}

// reapedLocked records that pid exited. pmu held.
func (a *agent) reapedLocked(pid, code int) {
	if in, ok := a.byPID[pid]; ok {
		in.exited = true
		in.reaped <- code
		delete(a.byPID, pid)
	}
}

// register records a new instance of p. pmu held.
func (a *agent) register(p *proc, pid int) *instance {
	in := &instance{pid: pid, reaped: make(chan int, 1)}
	a.byPID[pid] = in
	p.cur = in
	p.started = true
	p.live++
	return in
}

// instanceDone accounts for an instance of p whose exit has been reported.
func (a *agent) instanceDone(p *proc) {
	a.pmu.Lock()
	p.live--
	p.settle()
	a.pmu.Unlock()
	a.kick() // the node may be done now
}

// startProc starts an instance of p, in its cgroup, with its output piped
// into events. pmu held (by the caller, which may be the epoch thread
// executing a restart). Once reaped and drained, the instance's exit is
// reported and accounted for.
func (a *agent) startProc(p *proc) error {
	if len(p.spec.Argv) == 0 {
		return fmt.Errorf("empty argv")
	}
	rOut, wOut, err := os.Pipe()
	if err != nil {
		return err
	}
	rErr, wErr, err := os.Pipe()
	if err != nil {
		rOut.Close()
		wOut.Close()
		return err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		rOut.Close()
		wOut.Close()
		rErr.Close()
		wErr.Close()
		return err
	}
	spec := p.spec
	attr := &os.ProcAttr{
		Dir:   "/",
		Env:   withSDKEnv(append(append([]string(nil), a.cfg.Env...), spec.Env...)),
		Files: []*os.File{devnull, wOut, wErr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	var proc *os.Process
	if p.cgroup != "" {
		proc, err = a.startInCgroup(p, attr)
	} else {
		proc, err = os.StartProcess(spec.Argv[0], spec.Argv, attr)
	}
	devnull.Close()
	wOut.Close()
	wErr.Close()
	if err != nil {
		rOut.Close()
		rErr.Close()
		return err
	}
	in := a.register(p, proc.Pid)
	_ = proc.Release() // reaped by the PID 1 loop, not by os.Process
	a.emit(wire.Event{Kind: wire.KindStart, Proc: spec.Name, Data: []byte(strings.Join(spec.Argv, " "))})

	var drained sync.WaitGroup
	drained.Add(2)
	go a.pump(spec.Name, wire.KindStdout, rOut, &drained)
	go a.pump(spec.Name, wire.KindStderr, rErr, &drained)
	go func() {
		code := <-in.reaped
		// A daemonised grandchild may hold the pipes open: don't wait on
		// it longer than a moment of (virtual) time.
		w := make(chan struct{})
		go func() { drained.Wait(); close(w) }()
		select {
		case <-w:
		case <-time.After(100 * time.Millisecond):
		}
		a.emit(wire.Event{Kind: wire.KindExit, Proc: spec.Name, Code: int32(code)})
		a.logf("%s exited with %d", spec.Name, code)
		a.instanceDone(p)
		if p.exited != nil {
			p.exited(in.pid, code)
		}
	}()
	return nil
}

// withSDKEnv adds DETVM_SDK (the SDK socket, sdk.go) to env, unless the
// scenario set it.
func withSDKEnv(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, sdk.EnvVar+"=") {
			return env
		}
	}
	return append(env, sdk.EnvVar+"="+sdk.SocketPath)
}

// startInCgroup starts the process directly inside p's cgroup with clone3's
// CLONE_INTO_CGROUP, so it runs no instruction outside it. A kernel that
// refuses (older than 5.7, or a cgroup it will not take) gets a second
// try: start in the agent's cgroup, then move the pid — the process may run
// briefly outside its cgroup, which a cpu-max or freeze applied before the
// move would not cover.
func (a *agent) startInCgroup(p *proc, attr *os.ProcAttr) (*os.Process, error) {
	argv := p.spec.Argv
	dir, err := os.Open(p.cgroup)
	if err != nil {
		a.logf("%s: open cgroup: %v", p.spec.Name, err)
		return os.StartProcess(argv[0], argv, attr)
	}
	defer dir.Close()
	attr.Sys.UseCgroupFD = true
	attr.Sys.CgroupFD = int(dir.Fd())
	proc, err := os.StartProcess(argv[0], argv, attr)
	if err == nil {
		return proc, nil
	}
	// The error may also be the program's own (a missing binary): then
	// the second try fails the same way and that error is returned.
	attr.Sys.UseCgroupFD = false
	proc, err2 := os.StartProcess(argv[0], argv, attr)
	if err2 != nil {
		return nil, err2
	}
	if werr := os.WriteFile(p.cgroup+"/cgroup.procs", []byte(strconv.Itoa(proc.Pid)), 0); werr != nil {
		a.logf("%s: not started in its cgroup (%v) nor moved there: %v", p.spec.Name, err, werr)
	} else {
		a.logf("%s: not started in its cgroup (%v): moved pid %d", p.spec.Name, err, proc.Pid)
	}
	return proc, nil
}

// pump turns a process's output into line events.
func (a *agent) pump(name string, kind wire.Kind, r *os.File, wg *sync.WaitGroup) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			a.emit(wire.Event{Kind: kind, Proc: name, Data: append([]byte(nil), line...)})
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if err != io.EOF {
				a.logf("%s %s: %v", name, kind, err)
			}
			return
		}
	}
}
