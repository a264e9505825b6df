//go:build linux

package agent

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// fakeKernel records what fault commands do; fail makes one kind of call
// fail.
type fakeKernel struct {
	calls []string
	fail  map[string]error // by call kind: "signal", "write", "step", "freq"
}

func (k *fakeKernel) err(kind string) error { return k.fail[kind] }

func (k *fakeKernel) signal(pgid int, sig unix.Signal) error {
	k.calls = append(k.calls, fmt.Sprintf("signal -%d %s", pgid, unix.SignalName(sig)))
	return k.err("signal")
}

func (k *fakeKernel) write(path, data string) error {
	k.calls = append(k.calls, fmt.Sprintf("write %s %q", path, data))
	return k.err("write")
}

func (k *fakeKernel) clockStep(d int64) error {
	k.calls = append(k.calls, fmt.Sprintf("step %d", d))
	return k.err("step")
}

func (k *fakeKernel) clockFreq(ppm int64) error {
	k.calls = append(k.calls, fmt.Sprintf("freq %d", ppm))
	return k.err("freq")
}

// testAgent is an agent whose processes start as fake pids 100, 101, …
// without a fork: tests reap and finish them by hand.
func testAgent(t *testing.T, cfg wire.Config) (*agent, *fakeKernel) {
	t.Helper()
	k := &fakeKernel{fail: map[string]error{}}
	a := &agent{cfg: cfg, k: k, byPID: make(map[int]*instance)}
	next := 100
	a.start = func(p *proc) error {
		a.register(p, next)
		next++
		return nil
	}
	a.addProcs(false)
	for _, p := range a.procs {
		p.cgroup = "/cg/" + cgroupName(p.spec.Name)
	}
	return a, k
}

// exit reaps p's current instance and reports its exit done.
func exit(a *agent, p *proc, code int) {
	a.pmu.Lock()
	a.reapedLocked(p.cur.pid, code)
	a.pmu.Unlock()
	<-p.cur.reaped
	a.instanceDone(p)
}

func run(a *agent, c wire.Command) string {
	proc, line := a.execute(c)
	return proc + "|" + line
}

func TestCommandDispatch(t *testing.T) {
	a, k := testAgent(t, wire.Config{
		Main:     &wire.Proc{Name: "etcd", Argv: []string{"/etcd"}},
		Commands: []wire.Proc{{Name: "put", Argv: []string{"/put"}}, {Name: "sidekick", Argv: []string{"/s"}, Daemon: true}},
	})
	a.startFirst(a.main)
	steps := []struct {
		c    wire.Command
		want string // proc|line
		call string // the kernel call it made, "" for none
	}{
		{wire.Command{Op: "kill"}, "etcd|kill pid 100", "signal -100 SIGKILL"},
		{wire.Command{Op: "stop", Proc: "etcd"}, "etcd|stop pid 100", "signal -100 SIGSTOP"},
		{wire.Command{Op: "cont", Proc: "etcd"}, "etcd|cont pid 100", "signal -100 SIGCONT"},
		{wire.Command{Op: "kill", Proc: "put"}, "put|kill: not running", ""},
		{wire.Command{Op: "restart", Proc: "put"}, "put|restart: not started", ""},
		{wire.Command{Op: "restart"}, "etcd|restart: already running", ""},
		{wire.Command{Op: "kill", Proc: "nope"}, `nope|kill: no process "nope"`, ""},
		{wire.Command{Op: "cpu-max", Ratio: 0.25}, "etcd|cpu-max 0.25", `write /cg/etcd/cpu.max "25000 100000"`},
		{wire.Command{Op: "cpu-max", Ratio: 1}, "etcd|cpu-max 1", `write /cg/etcd/cpu.max "max 100000"`},
		{wire.Command{Op: "cpu-max", Ratio: 1.5}, "etcd|cpu-max 1.5: ratio not in [0.01, 1]", ""},
		{wire.Command{Op: "cpu-max", Proc: "put"}, "put|cpu-max 0: ratio not in [0.01, 1]", ""},
		{wire.Command{Op: "cpu-max", Proc: "put", Ratio: 0.5}, "put|cpu-max 0.5", `write /cg/put/cpu.max "50000 100000"`},
		{wire.Command{Op: "freeze", Proc: "sidekick"}, "sidekick|freeze", `write /cg/sidekick/cgroup.freeze "1"`},
		{wire.Command{Op: "thaw", Proc: "sidekick"}, "sidekick|thaw", `write /cg/sidekick/cgroup.freeze "0"`},
		{wire.Command{Op: "clock-step", Proc: "etcd", DeltaNS: 5e9}, "|clock-step +5s", "step 5000000000"},
		{wire.Command{Op: "clock-step", DeltaNS: -1.5e6}, "|clock-step -1.5ms", "step -1500000"},
		{wire.Command{Op: "clock-step"}, "|clock-step 0s", "step 0"},
		{wire.Command{Op: "clock-freq", PPM: 100}, "|clock-freq +100ppm", "freq 100"},
		{wire.Command{Op: "clock-freq", PPM: -500}, "|clock-freq -500ppm", "freq -500"},
		{wire.Command{Op: "clock-freq"}, "|clock-freq 0ppm", "freq 0"},
		{wire.Command{Op: "clock-freq", PPM: 501}, "|clock-freq +501ppm: beyond ±500ppm", ""},
		{wire.Command{Op: "reboot", Proc: "x"}, `x|"reboot": unknown op`, ""},
		{wire.Command{Op: ""}, `|"": unknown op`, ""},
	}
	for _, s := range steps {
		k.calls = nil
		if got := run(a, s.c); got != s.want {
			t.Errorf("%+v: got %q, want %q", s.c, got, s.want)
		}
		call := strings.Join(k.calls, "; ")
		if call != s.call {
			t.Errorf("%+v: kernel calls %q, want %q", s.c, call, s.call)
		}
	}
	// Every op the wire documents has an entry in the table.
	for _, op := range []string{wire.OpKill, wire.OpRestart, wire.OpStop, wire.OpCont, wire.OpCPUMax,
		wire.OpFreeze, wire.OpThaw, wire.OpClockStep, wire.OpClockFreq} {
		if faultOps[op] == nil {
			t.Errorf("no handler for %q", op)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	a, k := testAgent(t, wire.Config{Main: &wire.Proc{Name: "m", Argv: []string{"/m"}}})
	a.startFirst(a.main)
	k.fail["signal"] = unix.EPERM
	k.fail["write"] = errors.New("write /cg/m/cpu.max: invalid argument")
	k.fail["step"] = unix.EINVAL
	k.fail["freq"] = unix.EPERM
	for _, tc := range []struct {
		c    wire.Command
		want string
	}{
		{wire.Command{Op: "kill"}, "m|kill pid 100: operation not permitted"},
		{wire.Command{Op: "cpu-max", Ratio: 0.3}, "m|cpu-max 0.3: write /cg/m/cpu.max: invalid argument"},
		{wire.Command{Op: "freeze"}, "m|freeze: write /cg/m/cpu.max: invalid argument"},
		{wire.Command{Op: "clock-step", DeltaNS: 1}, "|clock-step +1ns: invalid argument"},
		{wire.Command{Op: "clock-freq", PPM: 3}, "|clock-freq +3ppm: operation not permitted"},
	} {
		if got := run(a, tc.c); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.c, got, tc.want)
		}
	}
	// A failed kill is not a fault kill: the exit finishes the process.
	exit(a, a.main, 0)
	if n := a.waiting(); n != 0 {
		t.Fatalf("waiting = %d after a clean exit", n)
	}

	// No cgroup, no main process.
	a.main.cgroup = ""
	if got := run(a, wire.Command{Op: "thaw"}); got != "m|thaw: no cgroup" {
		t.Errorf("thaw without cgroup: %q", got)
	}
	b, _ := testAgent(t, wire.Config{})
	if got := run(b, wire.Command{Op: "restart"}); got != "|restart: no main process" {
		t.Errorf("restart without main: %q", got)
	}
}

// The run's accounting: a fault kill is not an exit that finishes a
// process; a restart makes it waited for again.
func TestWaitingThroughKillAndRestart(t *testing.T) {
	a, _ := testAgent(t, wire.Config{
		Main:     &wire.Proc{Name: "main", Argv: []string{"/m"}},
		Commands: []wire.Proc{{Name: "c1", Argv: []string{"/c"}}, {Name: "d", Argv: []string{"/d"}, Daemon: true}},
	})
	m, c1 := a.procs[0], a.procs[1]
	want := func(step string, n int) {
		t.Helper()
		if got := a.waiting(); got != n {
			t.Fatalf("%s: waiting = %d, want %d", step, got, n)
		}
	}
	finished := func(p *proc) bool {
		select {
		case <-p.fin:
			return true
		default:
			return false
		}
	}
	want("before any start", 2) // main and c1; the daemon never counts
	a.startFirst(m)
	want("main started", 2)
	if got := run(a, wire.Command{Op: "kill"}); got != "main|kill pid 100" {
		t.Fatal(got)
	}
	exit(a, m, -9)
	want("main killed by a fault", 2)
	if finished(m) {
		t.Fatal("a fault-killed process counts as finished")
	}
	if got := run(a, wire.Command{Op: "restart"}); got != "main|restart pid 101" {
		t.Fatal(got)
	}
	want("main restarted", 2)
	exit(a, m, 0)
	want("main exited by itself", 1)
	if !finished(m) {
		t.Fatal("main exited cleanly but is not finished")
	}
	// A finished process restarted is waited for again.
	if got := run(a, wire.Command{Op: "restart"}); got != "main|restart pid 102" {
		t.Fatal(got)
	}
	want("main restarted after finishing", 2)
	exit(a, m, 1)
	want("main exited again", 1)

	a.startFirst(c1)
	a.startFirst(a.procs[2])
	want("c1 and the daemon started", 1)
	// Killed, then the exit of the daemon changes nothing.
	run(a, wire.Command{Op: "kill", Proc: "d"})
	exit(a, a.procs[2], -9)
	want("daemon killed", 1)
	exit(a, c1, 0)
	want("all done", 0)
}

// A restart between reaping and the end of draining (a grandchild holding
// the pipes) must not let the old instance's late exit finish the new one.
func TestRestartWhileDraining(t *testing.T) {
	a, _ := testAgent(t, wire.Config{Main: &wire.Proc{Name: "m", Argv: []string{"/m"}}})
	m := a.main
	a.startFirst(m)
	old := m.cur
	run(a, wire.Command{Op: "kill"})
	a.pmu.Lock()
	a.reapedLocked(old.pid, -9) // reaped, output not yet drained
	a.pmu.Unlock()
	if got := run(a, wire.Command{Op: "restart"}); got != "m|restart pid 101" {
		t.Fatal(got)
	}
	a.instanceDone(m) // the old instance's exit is reported now
	if n := a.waiting(); n != 1 {
		t.Fatalf("waiting = %d while the restarted instance runs", n)
	}
	exit(a, m, 0)
	if n := a.waiting(); n != 0 {
		t.Fatalf("waiting = %d after the restarted instance exited", n)
	}
}

func TestRestartStartFailure(t *testing.T) {
	a, _ := testAgent(t, wire.Config{Main: &wire.Proc{Name: "m", Argv: []string{"/m"}}})
	fail := errors.New("fork/exec /m: no such file or directory")
	a.start = func(*proc) error { return fail }
	a.startFirst(a.main)
	if n := a.waiting(); n != 0 {
		t.Fatalf("a process that cannot start is still waited for (%d)", n)
	}
	if got := run(a, wire.Command{Op: "restart"}); got != "m|restart: fork/exec /m: no such file or directory" {
		t.Fatal(got)
	}
}

// Commands reach the agent through the page and leave as KindFault events,
// in order, with the fault id as Code.
func TestRunCommandsFromPage(t *testing.T) {
	a, _ := testAgent(t, wire.Config{Main: &wire.Proc{Name: "m", Argv: []string{"/m"}}})
	a.startFirst(a.main)
	page, err := wire.NewPage(make([]byte, wire.Size))
	if err != nil {
		t.Fatal(err)
	}
	a.page = page
	var enc []byte
	enc = wire.AppendCommand(enc, wire.Command{Fault: 7, Op: wire.OpStop})
	enc = wire.AppendCommand(enc, wire.Command{Fault: 8, Op: wire.OpClockStep, DeltaNS: 2e9})
	if page.AppendCmd(enc) != len(enc) {
		t.Fatal("commands not accepted")
	}
	a.wakeWork()
	evs := pendingEvents(t, a)
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%s %d %s %s", e.Kind, e.Code, e.Proc, e.Data))
	}
	want := []string{"fault 7 m stop pid 100", "fault 8  clock-step +2s"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if raw, _ := page.TakeCmd(); len(raw) != 0 {
		t.Fatal("commands left in the page")
	}
	// A corrupt record: the commands before it run, the agent logs the rest.
	a.pending = nil
	bad := wire.AppendCommand(nil, wire.Command{Fault: 9, Op: wire.OpCont})
	bad = append(bad, 3, 0, 0, 0, 'x', 'y', 'z')
	page.AppendCmd(bad)
	a.wakeWork()
	evs, _ = wire.DecodeEvents(a.pending)
	if len(evs) != 2 || evs[0].Kind != wire.KindFault || evs[1].Kind != wire.KindLog ||
		!strings.Contains(string(evs[1].Data), "command 1") {
		t.Fatalf("corrupt region: events %+v", evs)
	}
}

func TestCPUMax(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		want  string // "" = rejected
	}{
		{0.25, "25000 100000"},
		{0.5, "50000 100000"},
		{0.01, "1000 100000"},
		{0.333333, "33333 100000"},
		{0.999999, "100000 100000"},
		{1, "max 100000"},
		{0.009, ""},
		{0, ""},
		{-0.5, ""},
		{1.0000001, ""},
		{math.NaN(), ""},
		{math.Inf(1), ""},
	} {
		got, err := cpuMax(tc.ratio)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("cpuMax(%v) = %q, %v; want %q", tc.ratio, got, err, tc.want)
		}
	}
}

func TestCgroupName(t *testing.T) {
	for name, want := range map[string]string{
		"etcd":      "etcd",
		"cmd-1":     "cmd-1",
		"a_b":       "a_b",
		"server.py": "server%2epy",
		"..":        "%2e%2e",
		"a/b":       "a%2fb",
		"cpu.max":   "cpu%2emax",
		"100%":      "100%25",
		"":          "%",
	} {
		if got := cgroupName(name); got != want {
			t.Errorf("cgroupName(%q) = %q, want %q", name, got, want)
		}
	}
	// One to one: names that differ get different directories.
	seen := map[string]string{}
	for _, n := range []string{"a.b", "a_b", "a%2eb", "a%b", "a-b", "a b", "", "%", "%25"} {
		d := cgroupName(n)
		if o, ok := seen[d]; ok {
			t.Errorf("%q and %q both map to %q", o, n, d)
		}
		seen[d] = n
		if strings.ContainsAny(d, "./") {
			t.Errorf("cgroupName(%q) = %q contains '.' or '/'", n, d)
		}
	}
}

func TestWakeAt(t *testing.T) {
	const ms = 1_000_000
	const end = math.MaxInt64
	for _, tc := range []struct {
		name                string
		origin, epoch, base uint64
		want                uint64
	}{
		{"boot: ready barrier", 5 * ms, 1, 0, 6 * ms},
		{"boot: epoch 10", 5 * ms, 10, 0, 15 * ms},
		// Held out for k=3 epochs at epoch 10: released at controller
		// epoch 13 with Base 3, it runs its own 11th epoch.
		{"held out", 5 * ms, 14, 3, 16 * ms},
		// A rebooted agent joins at controller epoch 700.
		{"join late", 2 * ms, 701, 700, 3 * ms},
		{"epoch equals base", 2 * ms, 700, 700, 2 * ms},
		{"epoch before base", 2 * ms, 5, 700, 2 * ms},
		{"overflow", 2 * ms, math.MaxUint64, 0, end},
		{"origin at the end", end, 2, 1, end},
	} {
		if got := wakeAt(tc.origin, tc.epoch, tc.base, ms); got != tc.want {
			t.Errorf("%s: wakeAt(%d, %d, %d) = %d, want %d", tc.name, tc.origin, tc.epoch, tc.base, got, tc.want)
		}
	}
}

func TestSigned(t *testing.T) {
	for ns, want := range map[int64]string{5e9: "+5s", -1.5e6: "-1.5ms", 0: "0s", 1: "+1ns", math.MinInt64: "-2562047h47m16.854775808s"} {
		if got := signedDuration(ns); got != want {
			t.Errorf("signedDuration(%d) = %q, want %q", ns, got, want)
		}
	}
}
