//go:build linux

package agent

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/wire"
)

// testTemplate writes template name under root with one script per
// command: each echoes its name, sleeps, and exits with its code.
func testTemplate(t *testing.T, root, name string, cmds map[string]string) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, body := range cmds {
		script := "#!/bin/sh\necho \"$(basename \"$0\") $DETVM_TEST_INSTANCE\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// runComposer runs a real composer over real processes (no VM) until the
// run no longer waits for anything, and returns the events.
func runComposer(t *testing.T, test wire.Test, roots ...string) []wire.Event {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	old := composer.Roots
	composer.Roots = roots
	t.Cleanup(func() { composer.Roots = old })
	a := newAgent()
	a.cfg = wire.Config{Test: &test}
	a.addProcs(false)
	if n := a.waiting(); n != 1 {
		t.Fatalf("waiting = %d before the start, want 1 (the composer)", n)
	}
	a.sigc = make(chan os.Signal, 16)
	signal.Notify(a.sigc, unix.SIGCHLD)
	t.Cleanup(func() { signal.Stop(a.sigc) })
	go a.supervise()
	deadline := time.Now().Add(30 * time.Second)
	for a.waiting() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the composer did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pendingEvents(t, a)
}

// lifecycle lists the start and exit events, like "start first_a.sh".
func lifecycle(evs []wire.Event) []string {
	var out []string
	for _, e := range evs {
		switch e.Kind {
		case wire.KindStart:
			out = append(out, "start "+e.Proc)
		case wire.KindExit:
			out = append(out, fmt.Sprintf("exit %s %d", e.Proc, e.Code))
		}
	}
	return out
}

// The composer runs every phase with real processes, in order, and the run
// waits for it until the last finally_ command has exited.
func TestComposerRuns(t *testing.T) {
	root := t.TempDir()
	testTemplate(t, root, "basic", map[string]string{
		"first_setup.sh":         "",
		"parallel_driver_put.sh": "sleep 0.05",
		"serial_driver_check.sh": "sleep 0.02",
		"anytime_probe.sh":       "",
		"eventually_alive.sh":    "",
		"finally_count.sh":       "",
		"helper_lib.sh":          "exit 3",
	})
	// A template that cannot drive anything is never drawn.
	testTemplate(t, root, "broken", map[string]string{"first_x.sh": ""})
	// The choices come from the host's getrandom here, so only what holds
	// for every draw is checked: 1.2s leaves time for at least one driver
	// and, as no pause is longer than 1s, one anytime_ run.
	evs := runComposer(t, wire.Test{DurationNS: uint64(1200 * time.Millisecond), Parallelism: 2}, root, filepath.Join(root, "missing"))
	got := lifecycle(evs)
	if got[0] != "start "+composer.ProcName || got[1] != "start first_setup.sh" || got[2] != "exit first_setup.sh 0" {
		t.Fatalf("does not begin with the composer and first_: %q", got)
	}
	n := len(got)
	if want := []string{"start eventually_alive.sh", "exit eventually_alive.sh 0", "start finally_count.sh", "exit finally_count.sh 0", "exit test_composer 0"}; !slices.Equal(got[n-5:], want) {
		t.Fatalf("does not end with the checks: %q", got)
	}
	for _, e := range got[3 : n-5] {
		if !strings.Contains(e, "driver_") && !strings.Contains(e, "anytime_") || strings.HasPrefix(e, "exit") && !strings.HasSuffix(e, " 0") {
			t.Fatalf("unexpected %q in the driver phase: %q", e, got)
		}
	}
	if !slices.Contains(got, "start anytime_probe.sh") || slices.Contains(got, "start helper_lib.sh") ||
		!slices.Contains(got, "start parallel_driver_put.sh") && !slices.Contains(got, "start serial_driver_check.sh") {
		t.Fatalf("drivers: %q", got)
	}
	for _, e := range evs {
		if e.Kind == wire.KindStart && e.Proc == composer.ProcName && string(e.Data) != "template basic" {
			t.Errorf("composer start: %q", e.Data)
		}
		if e.Kind == wire.KindStdout && e.Proc == "first_setup.sh" && string(e.Data) != "first_setup.sh 1\n" {
			t.Errorf("first_setup.sh printed %q, want its name and instance 1", e.Data)
		}
	}
}

// A failing driver keeps finally_ from running; a command that cannot
// start exits 127; a template that cannot drive anything is an error.
func TestComposerFailures(t *testing.T) {
	root := t.TempDir()
	testTemplate(t, root, "failing", map[string]string{
		"singleton_driver_all.sh": "exit 2",
		"eventually_alive.sh":     "",
		"finally_count.sh":        "",
	})
	if err := os.WriteFile(filepath.Join(root, "failing", "anytime_noexec.sh"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := lifecycle(runComposer(t, wire.Test{Template: "failing", DurationNS: uint64(1200 * time.Millisecond)}, root))
	for _, want := range []string{"exit singleton_driver_all.sh 2", "exit anytime_noexec.sh 127", "exit eventually_alive.sh 0", "exit test_composer 0"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
	if slices.Contains(got, "start finally_count.sh") {
		t.Errorf("finally_ ran after a failed driver: %q", got)
	}

	testTemplate(t, root, "idle", map[string]string{"first_x.sh": ""})
	evs := runComposer(t, wire.Test{Template: "idle", DurationNS: uint64(time.Second)}, root)
	if got := lifecycle(evs); !slices.Equal(got, []string{"exit test_composer 1"}) || !strings.Contains(string(evs[len(evs)-1].Data), composer.ErrNoDriver.Error()) {
		t.Errorf("a template without drivers: %q %q", got, evs[len(evs)-1].Data)
	}
	evs = runComposer(t, wire.Test{Template: "nope", DurationNS: uint64(time.Second)}, root)
	if d := string(evs[len(evs)-1].Data); !strings.Contains(d, `no template "nope" (have: failing)`) {
		t.Errorf("a missing template: %q", d)
	}
}
