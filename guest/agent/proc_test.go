//go:build linux

package agent

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// Real processes, no VM and no cgroup: a fault kill takes down the process
// group, the run keeps waiting, a restart starts the spec again and its
// clean exit finishes the process.
func TestRealKillRestart(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	marker := filepath.Join(t.TempDir(), "ran")
	// The first instance leaves a marker and sleeps in a child (same
	// process group); the second finds the marker and exits 0.
	script := fmt.Sprintf("if [ -e %s ]; then exit 0; fi; : > %s; sleep 100; exit 3", marker, marker)
	a := newAgent()
	a.cfg = wire.Config{Main: &wire.Proc{Name: "m", Argv: []string{"/bin/sh", "-c", script}}}
	a.addProcs(false)
	a.sigc = make(chan os.Signal, 16)
	signal.Notify(a.sigc, unix.SIGCHLD)
	t.Cleanup(func() { signal.Stop(a.sigc) })
	go a.supervise()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	state := func() (started, running bool, live int) {
		a.pmu.Lock()
		defer a.pmu.Unlock()
		return a.main.started, a.main.running(), a.main.live
	}
	waitFor("the marker", func() bool { _, err := os.Stat(marker); return err == nil })
	proc, line := a.execute(wire.Command{Op: wire.OpKill})
	if proc != "m" || !strings.HasPrefix(line, "kill pid ") || strings.Contains(line, ": ") {
		t.Fatalf("kill: %q %q", proc, line)
	}
	waitFor("the killed instance to be done", func() bool { _, _, live := state(); return live == 0 })
	if n := a.waiting(); n != 1 {
		t.Fatalf("waiting = %d after a fault kill", n)
	}
	if _, line := a.execute(wire.Command{Op: wire.OpKill}); line != "kill: not running" {
		t.Fatalf("second kill: %q", line)
	}
	if _, line := a.execute(wire.Command{Op: wire.OpRestart}); !strings.HasPrefix(line, "restart pid ") {
		t.Fatalf("restart: %q", line)
	}
	waitFor("the restarted instance to finish", func() bool { return a.waiting() == 0 })

	var exits []int32
	for _, e := range pendingEvents(t, a) {
		if e.Kind == wire.KindExit {
			exits = append(exits, e.Code)
		}
	}
	if fmt.Sprint(exits) != fmt.Sprint([]int32{-int32(unix.SIGKILL), 0}) {
		t.Fatalf("exit codes %v, want [-9 0]", exits)
	}
}
