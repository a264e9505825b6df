package composer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// spec is how a simulated command behaves: every run lasts dur (or a
// duration drawn per run when vary is set), and the runs listed in fails
// (counting from 1) exit 1.
type spec struct {
	dur   time.Duration
	vary  bool
	fails []int
}

// event is one line of a simulated run.
type event struct {
	at   time.Duration
	what string // "note", "start", "exit"
	s    Start
	code int
	note string
}

func (e event) String() string {
	switch e.what {
	case "note":
		return fmt.Sprintf("%v: %s", e.at, e.note)
	case "exit":
		return fmt.Sprintf("%v: exit #%d %s %d", e.at, e.s.ID, e.s.Name, e.code)
	}
	return fmt.Sprintf("%v: start #%d %s", e.at, e.s.ID, e.s.Name)
}

// simulate runs a Planner against simulated commands the way the guest
// agent drives it: Poll at the start, after every exit (one at a time, in
// start order when several end at once) and at every Wake. It stops when
// the planner is done or at end.
func simulate(t *testing.T, tmpl *Template, cfg Config, seed uint64, specs map[string]spec, end time.Duration) []event {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x64657476)) // the plan's
	durs := rand.New(rand.NewPCG(seed, 1))         // the simulated commands'
	p := New(tmpl, cfg, rng)
	var log []event
	ends := map[int]time.Duration{}
	runs := map[string]int{}
	codes := map[int]int{}
	now := time.Duration(0)
	poll := func() Output {
		out := p.Poll(now)
		for _, n := range out.Notes {
			log = append(log, event{at: now, what: "note", note: n})
		}
		for _, s := range out.Starts {
			log = append(log, event{at: now, what: "start", s: s})
			sp := specs[s.Name]
			d := sp.dur
			if sp.vary {
				d = time.Duration(durs.Int64N(int64(sp.dur/time.Millisecond)+1)) * time.Millisecond
			}
			ends[s.ID] = now + d
			runs[s.Name]++
			if slices.Contains(sp.fails, runs[s.Name]) {
				codes[s.ID] = 1
			}
		}
		return out
	}
	out := poll()
	for !out.Done {
		next := out.Wake
		first := 0
		for id, at := range ends {
			if at < next || at == next && (first == 0 || id < first) {
				next, first = at, id
			}
		}
		if next == Never {
			t.Fatalf("stuck at %v: nothing runs and no wake", now)
		}
		if next > end {
			break
		}
		if next < now {
			t.Fatalf("time went back from %v to %v", now, next)
		}
		now = next
		if first != 0 && ends[first] == now {
			s := p.running[first]
			delete(ends, first)
			log = append(log, event{at: now, what: "exit", s: s, code: codes[first]})
			p.Exited(first, codes[first])
		}
		out = poll()
	}
	if out.Done && len(ends) > 0 {
		t.Fatalf("done with %d command(s) running", len(ends))
	}
	return log
}

// parseRun reads a datadriven "run" command: its arguments configure the
// planner, each input line names a file of the template with, optionally,
// how long each run lasts (default 100ms; "~1s" draws up to 1s per run)
// and which runs fail ("fail=2,5").
func parseRun(t *testing.T, d *datadriven.TestData) (*Template, Config, uint64, map[string]spec, time.Duration) {
	cfg := Config{Deadline: 5 * time.Second}
	seed := uint64(1)
	end := time.Hour
	for _, a := range d.CmdArgs {
		v := ""
		if len(a.Vals) > 0 {
			v = a.Vals[0]
		}
		var err error
		switch a.Key {
		case "seed":
			seed, err = strconv.ParseUint(v, 10, 64)
		case "deadline":
			cfg.Deadline, err = time.ParseDuration(v)
		case "parallelism":
			cfg.Parallelism, err = strconv.Atoi(v)
		case "maxpause":
			cfg.MaxPause, err = time.ParseDuration(v)
		case "end":
			end, err = time.ParseDuration(v)
		default:
			t.Fatalf("%s: unknown argument %s", d.Pos, a.Key)
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", d.Pos, a.Key, err)
		}
	}
	specs := map[string]spec{}
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		sp := spec{dur: 100 * time.Millisecond}
		for _, w := range f[1:] {
			switch {
			case strings.HasPrefix(w, "fail="):
				for _, n := range strings.Split(strings.TrimPrefix(w, "fail="), ",") {
					i, err := strconv.Atoi(n)
					if err != nil {
						t.Fatalf("%s: %s: %v", d.Pos, w, err)
					}
					sp.fails = append(sp.fails, i)
				}
			default:
				sp.vary = strings.HasPrefix(w, "~")
				dur, err := time.ParseDuration(strings.TrimPrefix(w, "~"))
				if err != nil {
					t.Fatalf("%s: %s: %v", d.Pos, w, err)
				}
				sp.dur = dur
			}
		}
		files = append(files, f[0])
		specs[f[0]] = sp
	}
	tmpl, err := NewTemplate("t", files)
	if err != nil {
		t.Fatalf("%s: %v", d.Pos, err)
	}
	return tmpl, cfg, seed, specs, end
}

// TestPlan runs the scripts in testdata/: each "run" simulates a template
// and prints what the planner started, when, and why.
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "run":
				tmpl, cfg, seed, specs, end := parseRun(t, d)
				var b strings.Builder
				for _, e := range simulate(t, tmpl, cfg, seed, specs, end) {
					b.WriteString(e.String() + "\n")
				}
				return b.String()
			case "template":
				tmpl, err := NewTemplate("t", strings.Fields(d.Input))
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				var b strings.Builder
				for k := First; k <= Finally; k++ {
					if c := tmpl.Of(k); len(c) > 0 {
						fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(c, " "))
					}
				}
				return b.String()
			}
			t.Fatalf("%s: unknown command %s", d.Pos, d.Cmd)
			return ""
		})
	})
}

// rich is a template with every kind of command, two of most.
var rich = []string{
	"first_a.sh", "first_b.sh",
	"parallel_driver_put.sh", "parallel_driver_get.sh",
	"serial_driver_check.sh",
	"singleton_driver_all.sh", "singleton_driver_other.sh",
	"anytime_probe.sh", "anytime_stat.sh",
	"eventually_alive.sh", "eventually_converged.sh",
	"finally_count.sh", "finally_sum.sh",
	"helper_lib.sh", "README",
}

// richSpecs lets every command run up to 800ms, drawn per run; with
// failing, one driver run in twenty fails.
func richSpecs(failing bool) map[string]spec {
	specs := map[string]spec{}
	for _, f := range rich {
		specs[f] = spec{dur: 800 * time.Millisecond, vary: true}
	}
	if failing {
		specs["parallel_driver_put.sh"] = spec{dur: 800 * time.Millisecond, vary: true, fails: []int{3}}
	}
	return specs
}

// TestSemantics checks, over many seeds, the rules docs/composer.md
// promises, on every kind of template.
func TestSemantics(t *testing.T) {
	templates := map[string][]string{
		"rich":      rich,
		"mix":       {"parallel_driver_put.sh", "parallel_driver_get.sh", "serial_driver_check.sh", "anytime_probe.sh", "eventually_alive.sh", "finally_count.sh"},
		"singleton": {"first_a.sh", "singleton_driver_all.sh", "anytime_probe.sh", "finally_count.sh"},
		"anytime":   {"anytime_probe.sh", "eventually_alive.sh"},
		"parallel":  {"parallel_driver_put.sh", "finally_count.sh"},
	}
	for name, files := range templates {
		tmpl, err := NewTemplate(name, files)
		if err != nil {
			t.Fatal(err)
		}
		for _, failing := range []bool{false, true} {
			for seed := uint64(1); seed <= 200; seed++ {
				cfg := Config{Deadline: 4 * time.Second, Parallelism: 1 + int(seed%3)}
				log := simulate(t, tmpl, cfg, seed, richSpecs(failing), time.Hour)
				if err := checkRules(tmpl, cfg, log); err != nil {
					t.Fatalf("template %s seed %d failing %v: %v\n%s", name, seed, failing, err, dump(log))
				}
			}
		}
	}
}

func dump(log []event) string {
	var b strings.Builder
	for _, e := range log {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

// checkRules replays a simulated run and reports the first broken rule.
func checkRules(tmpl *Template, cfg Config, log []event) error {
	running := map[int]Start{}
	count := func(k Kind) int {
		n := 0
		for _, s := range running {
			if s.Kind == k {
				n++
			}
		}
		return n
	}
	drivers := func() int { return count(ParallelDriver) + count(SerialDriver) + count(SingletonDriver) }
	started := map[Kind]int{}
	var firstFailed, driverFailed bool
	lastCheck := map[Kind]string{} // the last eventually_ and finally_ started
	for i, e := range log {
		switch e.what {
		case "exit":
			delete(running, e.s.ID)
			if e.code != 0 {
				firstFailed = firstFailed || e.s.Kind == First
				driverFailed = driverFailed || e.s.Kind.Driver()
			}
			continue
		case "note":
			continue
		}
		s := e.s
		if started[First] > 0 && running[1].Kind == First {
			return fmt.Errorf("event %d: %s starts while first_ runs", i, s.Name)
		}
		if firstFailed {
			return fmt.Errorf("event %d: %s starts after first_ failed", i, s.Name)
		}
		switch s.Kind {
		case First:
			if len(started) > 0 {
				return fmt.Errorf("event %d: first_ is not the only first start", i)
			}
		case ParallelDriver, SerialDriver, SingletonDriver, Anytime:
			if e.at >= cfg.Deadline {
				return fmt.Errorf("event %d: %s starts at %v, after the deadline", i, s.Name, e.at)
			}
			if started[Eventually]+started[Finally] > 0 {
				return fmt.Errorf("event %d: %s starts after the checks began", i, s.Name)
			}
		case Eventually, Finally:
			if e.at < cfg.Deadline {
				return fmt.Errorf("event %d: %s starts at %v, before the deadline", i, s.Name, e.at)
			}
			if len(running) > 0 {
				return fmt.Errorf("event %d: %s starts while %d command(s) run", i, s.Name, len(running))
			}
			if last := lastCheck[s.Kind]; s.Name <= last {
				return fmt.Errorf("event %d: %s after %s: not in name order", i, s.Name, last)
			}
			lastCheck[s.Kind] = s.Name
			if s.Kind == Eventually && started[Finally] > 0 {
				return fmt.Errorf("event %d: eventually_ after finally_", i)
			}
			if s.Kind == Finally && driverFailed {
				return fmt.Errorf("event %d: finally_ after a driver failed", i)
			}
		}
		switch s.Kind {
		case ParallelDriver:
			if count(SerialDriver)+count(SingletonDriver) > 0 || count(ParallelDriver) >= cfg.Parallelism {
				return fmt.Errorf("event %d: %s starts beside %d parallel, %d serial, %d singleton", i, s.Name, count(ParallelDriver), count(SerialDriver), count(SingletonDriver))
			}
		case SerialDriver:
			if drivers() > 0 {
				return fmt.Errorf("event %d: %s starts beside %d driver(s)", i, s.Name, drivers())
			}
		case SingletonDriver:
			if started[ParallelDriver]+started[SerialDriver]+started[SingletonDriver] > 0 {
				return fmt.Errorf("event %d: %s is not the only driver", i, s.Name)
			}
		case Anytime:
			for _, r := range running {
				if r.Name == s.Name {
					return fmt.Errorf("event %d: a second %s", i, s.Name)
				}
			}
		}
		if (s.Kind == ParallelDriver || s.Kind == SerialDriver) && started[SingletonDriver] > 0 {
			return fmt.Errorf("event %d: %s after a singleton", i, s.Name)
		}
		running[s.ID] = s
		started[s.Kind]++
	}
	if len(running) > 0 {
		return fmt.Errorf("%d command(s) still run at the end", len(running))
	}
	// Everything that should have run did.
	if n := len(tmpl.Of(First)); n > 0 && started[First] != 1 {
		return fmt.Errorf("%d first_ runs, want 1", started[First])
	}
	if !firstFailed {
		if started[Eventually] != len(tmpl.Of(Eventually)) {
			return fmt.Errorf("%d eventually_ runs, want %d", started[Eventually], len(tmpl.Of(Eventually)))
		}
		want := len(tmpl.Of(Finally))
		if driverFailed {
			want = 0
		}
		if started[Finally] != want {
			return fmt.Errorf("%d finally_ runs, want %d", started[Finally], want)
		}
		if started[ParallelDriver]+started[SerialDriver]+started[SingletonDriver]+started[Anytime] == 0 {
			return fmt.Errorf("no driver or anytime command ran")
		}
	}
	return nil
}

// TestDeterministic: the same seed gives the same run; different seeds
// give different runs, and every kind of driver run turns up.
func TestDeterministic(t *testing.T) {
	tmpl, err := NewTemplate("rich", rich)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Deadline: 4 * time.Second, Parallelism: 3}
	plans := map[string]bool{}
	solos := map[string]int{}
	for seed := uint64(1); seed <= 60; seed++ {
		a := dump(simulate(t, tmpl, cfg, seed, richSpecs(false), time.Hour))
		if b := dump(simulate(t, tmpl, cfg, seed, richSpecs(false), time.Hour)); a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\n%s", seed, a, b)
		}
		plans[a] = true
		switch {
		case strings.Contains(a, "singleton_driver_all.sh alone"):
			solos["all"]++
		case strings.Contains(a, "singleton_driver_other.sh alone"):
			solos["other"]++
		default:
			solos["mix"]++
		}
	}
	if len(plans) < 55 {
		t.Errorf("60 seeds gave only %d different runs", len(plans))
	}
	for _, k := range []string{"all", "other", "mix"} {
		if solos[k] < 8 {
			t.Errorf("%s drawn %d times in 60 seeds (%v)", k, solos[k], solos)
		}
	}
}

// TestParallelism: a mix of long parallel drivers reaches the limit.
func TestParallelism(t *testing.T) {
	tmpl, err := NewTemplate("p", []string{"parallel_driver_a.sh", "parallel_driver_b.sh"})
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]spec{"parallel_driver_a.sh": {dur: 3 * time.Second}, "parallel_driver_b.sh": {dur: 3 * time.Second}}
	cfg := Config{Deadline: 10 * time.Second, Parallelism: 4}
	most, now := 0, 0
	for _, e := range simulate(t, tmpl, cfg, 7, specs, time.Hour) {
		switch e.what {
		case "start":
			now++
		case "exit":
			now--
		}
		most = max(most, now)
	}
	if most != 4 {
		t.Errorf("at most %d parallel drivers ran at once, want 4", most)
	}
}
