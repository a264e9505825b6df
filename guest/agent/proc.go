//go:build linux

package agent

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// maxLine bounds one output event; longer lines are split.
const maxLine = 4096

// supervise starts the node's main process and its commands, and reaps
// every child (PID 1 inherits orphans). It never returns.
func (a *agent) supervise() {
	exits := make(map[int]chan int) // pid → exit code, for the processes we started
	var emu sync.Mutex
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, unix.SIGCHLD)

	start := func(p wire.Proc) (int, <-chan int) {
		emu.Lock()
		defer emu.Unlock()
		pid, reaped, done, err := a.startProc(p)
		if err != nil {
			a.emit(wire.Event{Kind: wire.KindExit, Proc: p.Name, Code: 127, Data: []byte(err.Error())})
			a.logf("%s: %v", p.Name, err)
			c := make(chan int, 1)
			c <- 127
			return 0, c
		}
		exits[pid] = reaped
		return pid, done
	}

	if a.cfg.Main != nil {
		_, mainDone := start(*a.cfg.Main)
		go a.finished(*a.cfg.Main, mainDone)
	}
	go func() {
		for _, c := range a.cfg.Commands {
			time.Sleep(time.Duration(c.AfterNS))
			_, done := start(c)
			a.finished(c, done)
		}
	}()

	for range sigc {
		// Holding emu across wait4 means a child that exits at once is
		// not reaped before start has registered its pid.
		emu.Lock()
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = -int(ws.Signal())
			}
			if c, ok := exits[pid]; ok {
				c <- code
				delete(exits, pid)
			}
		}
		emu.Unlock()
	}
}

// finished waits for p to exit and accounts for it.
func (a *agent) finished(p wire.Proc, done <-chan int) {
	<-done
	if !p.Daemon {
		a.mu.Lock()
		a.waiting--
		a.mu.Unlock()
	}
}

// startProc starts p with its output piped into events. The reaper sends
// the exit code on reaped; done yields it once the output is drained too.
func (a *agent) startProc(p wire.Proc) (pid int, reaped, done chan int, err error) {
	rOut, wOut, err := os.Pipe()
	if err != nil {
		return 0, nil, nil, err
	}
	rErr, wErr, err := os.Pipe()
	if err != nil {
		return 0, nil, nil, err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, nil, err
	}
	env := append(append([]string(nil), a.cfg.Env...), p.Env...)
	proc, err := os.StartProcess(p.Argv[0], p.Argv, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{devnull, wOut, wErr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	devnull.Close()
	wOut.Close()
	wErr.Close()
	if err != nil {
		rOut.Close()
		rErr.Close()
		return 0, nil, nil, err
	}
	pid = proc.Pid
	_ = proc.Release() // reaped by the PID 1 loop, not by os.Process
	a.emit(wire.Event{Kind: wire.KindStart, Proc: p.Name, Data: []byte(strings.Join(p.Argv, " "))})

	var drained sync.WaitGroup
	drained.Add(2)
	go a.pump(p.Name, wire.KindStdout, rOut, &drained)
	go a.pump(p.Name, wire.KindStderr, rErr, &drained)
	reaped = make(chan int, 1)
	done = make(chan int, 1)
	go func() {
		code := <-reaped
		// A daemonised grandchild may hold the pipes open: don't wait on
		// it longer than a moment of (virtual) time.
		w := make(chan struct{})
		go func() { drained.Wait(); close(w) }()
		select {
		case <-w:
		case <-time.After(100 * time.Millisecond):
		}
		a.emit(wire.Event{Kind: wire.KindExit, Proc: p.Name, Code: int32(code)})
		a.logf("%s exited with %d", p.Name, code)
		done <- code
	}()
	return pid, reaped, done, nil
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
