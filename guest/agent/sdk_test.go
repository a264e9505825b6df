//go:build linux

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// sdkClient is a socket like the SDK's: autobound, so it gets replies.
func sdkClient(t *testing.T, bind bool) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if bind {
		if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
			t.Fatal(err)
		}
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// pendingEvents decodes the events the agent has queued for the next barrier.
func pendingEvents(t *testing.T, a *agent) []wire.Event {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	evs, err := wire.DecodeEvents(a.pending)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSDKSocket: datagrams become KindSDK events in arrival order, named
// after the sending process (here the test itself, registered as "w"), a
// bad one becomes a log line, and a bound sender gets a reply.
func TestSDKSocket(t *testing.T) {
	a := newAgent()
	a.procs = []*proc{{spec: wire.Proc{Name: "w"}, cur: &instance{pid: os.Getpid()}}}
	path := filepath.Join(t.TempDir(), "run", "sdk")
	if err := a.serveSDK(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.sdk.f.Close() })
	to := &unix.SockaddrUnix{Name: path}

	c := sdkClient(t, true)
	buf := make([]byte, 256)
	for _, tc := range []struct{ msg, reply string }{
		{`{"type":"assert","assert":"always","message":"x ok","condition":true}`, "ok"},
		{` {"type":"setup_complete"} `, "ok"},
		{`not json`, "bad message: not one JSON object"},
		{`{"a":1}{"b":2}`, "bad message: not one JSON object"},
		{`{"pad":"` + strings.Repeat("x", wire.MaxSDKMessage) + `"}`, fmt.Sprintf("bad message: longer than %d bytes", wire.MaxSDKMessage)},
	} {
		if err := unix.Sendto(c, []byte(tc.msg), 0, to); err != nil {
			t.Fatal(err)
		}
		n, _, err := unix.Recvfrom(c, buf, 0)
		if err != nil {
			t.Fatalf("%.40s: no reply: %v", tc.msg, err)
		}
		if got := string(buf[:n]); got != tc.reply {
			t.Errorf("%.40s: reply %q, want %q", tc.msg, got, tc.reply)
		}
	}
	// A sender without an address gets no reply, and the epoch thread's
	// drain takes its message even if the reader has not run yet.
	u := sdkClient(t, false)
	for i := 0; i < 3; i++ {
		if err := unix.Sendto(u, []byte(fmt.Sprintf(`{"type":"history","op":{"index":%d}}`, i)), 0, to); err != nil {
			t.Fatal(err)
		}
	}
	a.drainSDK()

	var got []string
	for _, e := range pendingEvents(t, a) {
		switch e.Kind {
		case wire.KindSDK:
			got = append(got, fmt.Sprintf("sdk %s %s", e.Proc, e.Data))
		case wire.KindLog:
			got = append(got, "log "+string(e.Data[:min(len(e.Data), 70)]))
		}
	}
	want := []string{
		`sdk w {"type":"assert","assert":"always","message":"x ok","condition":true}`,
		`sdk w  {"type":"setup_complete"} `, // exactly as received
		`log sdk: bad message: not one JSON object (from w): "not json"`,
		`log sdk: bad message: not one JSON object (from w): "{\"a\":1}{\"b\":2}"`,
		`log sdk: bad message: longer than 65536 bytes (from w): "{\"pad\":\"xxxxxx`,
		`sdk w {"type":"history","op":{"index":0}}`,
		`sdk w {"type":"history","op":{"index":1}}`,
		`sdk w {"type":"history","op":{"index":2}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := unix.Recvfrom(u, buf, unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Errorf("unbound sender: %v, want no reply", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
}

func TestProcOf(t *testing.T) {
	a := newAgent()
	if got := a.procOf(os.Getpid()); got != "" {
		t.Errorf("unregistered process named %q", got)
	}
	// The parent is registered: a child of a node process is that process.
	a.procs = []*proc{{spec: wire.Proc{Name: "parent"}, cur: &instance{pid: os.Getppid()}}}
	if got := a.procOf(os.Getpid()); got != "parent" {
		t.Errorf("procOf(self) = %q, want the registered parent", got)
	}
	// Exited instances name no one.
	a.procs[0].cur.exited = true
	if got := a.procOf(os.Getpid()); got != "" {
		t.Errorf("procOf(self) = %q after the parent's exit", got)
	}
	if parentPID(os.Getpid()) != os.Getppid() {
		t.Errorf("parentPID = %d, want %d", parentPID(os.Getpid()), os.Getppid())
	}
	if parentPID(1<<30) != 0 {
		t.Error("parentPID of no process")
	}
}

func TestWithSDKEnv(t *testing.T) {
	got := withSDKEnv([]string{"A=1"})
	if want := "A=1 DETVM_SDK=/run/detvm/sdk"; strings.Join(got, " ") != want {
		t.Errorf("%q", got)
	}
	if got := withSDKEnv([]string{"DETVM_SDK=/x"}); len(got) != 1 {
		t.Errorf("scenario's DETVM_SDK overridden: %q", got)
	}
}
