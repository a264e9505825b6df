//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
	"github.com/detvm/detvm/workload/sdk"
)

// The SDK socket (docs/sdk.md): a unix datagram socket at sdk.SocketPath
// whose every datagram is one JSON object, turned into a KindSDK event.
//
// Two readers take datagrams off it, and both under sdkServer.mu, so that
// events are emitted in the order the datagrams were queued: a goroutine
// woken by the netpoller when the socket is readable, and the epoch thread
// just before each barrier. The second makes a message sent before a
// barrier part of that barrier's events even if the goroutine has not run
// yet: a process that sends and exits at once cannot have its message
// lost behind its exit (or the run's end).
//
// A sender with an address (the SDK's clients autobind one) gets a reply
// once its message is queued as an event: "ok", or "bad message: ...". The
// SDK waits for it, so the sender is still alive when the agent looks up
// who it is, and its message precedes whatever it does next.

// sdkServer is the agent's end of the SDK socket.
type sdkServer struct {
	f   *os.File // owns fd; kept so that no finalizer closes it
	fd  int
	mu  sync.Mutex // held while taking datagrams off the socket and emitting them
	buf []byte
	oob []byte
}

// maxDgramQueue is how many datagrams may wait on the socket before senders
// block; the kernel's default is 10.
const maxDgramQueue = 512

// listenSDK creates the socket and starts its reader. Failing costs only
// the SDK: the node still runs.
func (a *agent) listenSDK() error {
	// Read by the kernel when the socket is created.
	_ = os.WriteFile("/proc/sys/net/unix/max_dgram_qlen", []byte(strconv.Itoa(maxDgramQueue)), 0)
	return a.serveSDK(sdk.SocketPath)
}

// serveSDK binds the socket at path and starts its reader.
func (a *agent) serveSDK(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("SO_PASSCRED: %w", err)
	}
	// Room for a burst of maximal messages (root may exceed rmem_max).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	_ = os.Remove(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind %s: %w", path, err)
	}
	// Any user may assert.
	if err := os.Chmod(path, 0o666); err != nil {
		unix.Close(fd)
		return err
	}
	f := os.NewFile(uintptr(fd), path) // non-blocking: served by the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	a.sdk = &sdkServer{f: f, fd: fd, buf: make([]byte, wire.MaxSDKMessage), oob: make([]byte, unix.CmsgSpace(unix.SizeofUcred))}
	go func() {
		// f returning false means: wait until readable, then call again.
		err := rc.Read(func(uintptr) bool { a.drainSDK(); return false })
		a.logf("sdk: reader stopped: %v", err)
	}()
	return nil
}

// drainSDK takes every queued datagram off the socket and emits it. Called
// from the reader goroutine and from the epoch thread before a barrier.
func (a *agent) drainSDK() {
	s := a.sdk
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		n, oobn, flags, from, err := unix.Recvmsg(s.fd, s.buf, s.oob, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if err != unix.EAGAIN {
				a.logf("sdk: receive: %v", err)
			}
			return
		}
		proc := ""
		if pid := senderPID(s.oob[:oobn]); pid > 0 {
			proc = a.procOf(pid)
		}
		data := s.buf[:n]
		reply := "ok"
		switch {
		case flags&unix.MSG_TRUNC != 0:
			reply = fmt.Sprintf("bad message: longer than %d bytes", wire.MaxSDKMessage)
		case !sdk.IsObject(data):
			reply = "bad message: not one JSON object"
		}
		if reply == "ok" {
			a.emit(wire.Event{Kind: wire.KindSDK, Proc: proc, Data: bytes.Clone(data)})
		} else {
			who := proc
			if who == "" {
				who = "an unknown process"
			}
			line := fmt.Sprintf("sdk: %s (from %s): %.200q", reply, who, data)
			a.console(line)
			a.emit(wire.Event{Kind: wire.KindLog, Data: []byte(line)})
		}
		if from != nil {
			_ = unix.Sendto(s.fd, []byte(reply), unix.MSG_DONTWAIT, from)
		}
	}
}

// senderPID is the pid in a datagram's SCM_CREDENTIALS, 0 if none.
func senderPID(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for i := range msgs {
		if c, err := unix.ParseUnixCredentials(&msgs[i]); err == nil {
			return int(c.Pid)
		}
	}
	return 0
}

// procOf names the node process pid belongs to: the process whose cgroup
// it is in (children included), else the nearest ancestor that is one of
// the node's processes; "" if none (the sender exited, or is not ours).
func (a *agent) procOf(pid int) string {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rel, ok := strings.CutPrefix(line, "0::"); ok {
				dir := cgroupRoot + rel
				// a.procs and their cgroups are fixed before the first
				// barrier: no lock needed to read them.
				for _, p := range a.procs {
					if p.cgroup != "" && p.cgroup == dir {
						return p.spec.Name
					}
				}
			}
		}
	}
	for depth := 0; pid > 1 && depth < 32; depth++ {
		if name := a.procByPID(pid); name != "" {
			return name
		}
		pid = parentPID(pid)
	}
	return ""
}

// procByPID names the process whose current instance is pid.
func (a *agent) procByPID(pid int) string {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	for _, p := range a.procs {
		if p.cur != nil && p.cur.pid == pid && !p.cur.exited {
			return p.spec.Name
		}
	}
	return a.testProcByPID(pid) // a test command's instance (composer.go)
}

// parentPID reads pid's parent from /proc, 0 if it is gone.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
