//go:build linux

package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/wire"
)

// The test composer runs Config.Test, a test in Antithesis' Test Composer
// layout (docs/composer.md), once the node's Commands are done. The plan is
// guest/composer's; this file is its driver: it starts the instances the
// planner asks for as processes (named after their command's file, so that
// their output and exits are events like any process's) and feeds their
// exits back. Every choice the planner makes is drawn from a PCG seeded
// from the kernel RNG, read after the run seed has been mixed into it, and
// every time it is given is guest CLOCK_MONOTONIC since the agent's first
// barrier: the plan is a function of the run.
//
// The composer itself is reported as a process named composer.ProcName: a
// start event once it has chosen a template, an exit event when the test
// is over (0) or cannot run (1, with the reason). The run waits for it.

// testRun is the composer's state that the process table's users see.
// Guarded by agent.pmu.
type testRun struct {
	done    bool
	running map[int]string // pid → command name, instances not yet reaped
}

// addTest registers the composer, so that the first barrier already waits
// for it. Called with the processes (addProcs).
func (a *agent) addTest() {
	if a.cfg.Test != nil {
		a.test = &testRun{running: map[int]string{}}
	}
}

// testWaiting is 1 while the run waits for the composer. pmu held.
func (a *agent) testWaiting() int {
	if a.test != nil && !a.test.done {
		return 1
	}
	return 0
}

// testProcByPID names the test command whose running instance is pid, ""
// if none. pmu held.
func (a *agent) testProcByPID(pid int) string {
	if a.test == nil {
		return ""
	}
	return a.test.running[pid]
}

// testExit is an instance's exit, from its reaper to the composer.
type testExit struct{ id, code int }

// compose runs the test, if the node has one, and then reports the
// composer's end. origin is guest CLOCK_MONOTONIC at the agent's first
// barrier: the planner's time 0.
func (a *agent) compose(origin uint64) {
	if a.test == nil {
		return
	}
	code, msg := int32(0), "test over"
	if err := a.runTest(origin); err != nil {
		code, msg = 1, err.Error()
		a.logf("composer: %v", err)
	}
	// The exit is emitted before the composer stops counting as waited
	// for, so the page that reports the node done carries it.
	a.emit(wire.Event{Kind: wire.KindExit, Proc: composer.ProcName, Code: code, Data: []byte(msg)})
	a.pmu.Lock()
	a.test.done = true
	a.pmu.Unlock()
	a.kick() // the node may be done now
}

// runTest chooses the template and drives its planner to the end.
func (a *agent) runTest(origin uint64) error {
	t := a.cfg.Test
	templates, paths, err := scanTests(composer.Roots)
	if err != nil {
		return err
	}
	var seed [16]byte
	if _, err := unix.Getrandom(seed[:], 0); err != nil {
		return fmt.Errorf("getrandom: %w", err)
	}
	pcg := rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))
	rng := rand.New(pcg)
	var names []string
	for name, tmpl := range templates {
		if tmpl != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if tmpl, ok := templates[t.Template]; ok && tmpl == nil {
		return fmt.Errorf("template %s: %w", t.Template, composer.ErrNoDriver)
	}
	name, err := composer.Pick(names, t.Template, rng)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(composer.Roots, ", "), err)
	}
	a.emit(wire.Event{Kind: wire.KindStart, Proc: composer.ProcName, Data: []byte("template " + name)})
	plan := composer.New(templates[name], composer.Config{Deadline: time.Duration(t.DurationNS), Parallelism: t.Parallelism}, rng)
	exits := make(chan testExit)
	branch := a.branch()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if b := a.branch(); b != branch {
			// A branch changes the future: from here on the plan's
			// choices follow the branch seed too.
			branch = b
			pcg.Seed(pcg.Uint64()^b, pcg.Uint64()^bits.RotateLeft64(b, 32)^0x9e3779b97f4a7c15)
			a.logf("composer: branch seed %d mixed into the plan's choices", b)
		}
		now := since(origin)
		out := plan.Poll(now)
		for _, n := range out.Notes {
			a.logf("composer: %s", n)
		}
		failed := false
		for _, s := range out.Starts {
			if !a.startTest(name, paths[name][s.Name], s, exits) {
				plan.Exited(s.ID, 127)
				failed = true
			}
		}
		if out.Done {
			return nil
		}
		if failed {
			continue // the planner has news at once
		}
		var wake <-chan time.Time
		if out.Wake != composer.Never {
			timer.Reset(max(0, out.Wake-now))
			wake = timer.C
		}
		select {
		case x := <-exits:
			plan.Exited(x.id, x.code)
		case <-wake:
		}
		timer.Stop() // since Go 1.23 a stopped timer delivers nothing stale
	}
}

// branch is the run's current branch seed (0 before any), as the last
// barrier left it in the page.
func (a *agent) branch() uint64 {
	if a.page == nil {
		return 0
	}
	return a.page.Branch()
}

// since is the virtual time from origin to now.
func since(origin uint64) time.Duration {
	return time.Duration(monoNS() - origin)
}

// startTest starts instance s of a command of template tmpl, the
// executable at file, and reports false if it could not (reported as an
// exit with status 127, like a scenario command's). Its exit reaches
// exits.
func (a *agent) startTest(tmpl, file string, s composer.Start, exits chan<- testExit) bool {
	p := &proc{
		spec: wire.Proc{
			Name: s.Name,
			Argv: []string{file},
			Env:  []string{"DETVM_TEST_TEMPLATE=" + tmpl, "DETVM_TEST_INSTANCE=" + strconv.Itoa(s.ID)},
		},
		fin: make(chan struct{}),
	}
	p.exited = func(pid, code int) {
		a.pmu.Lock()
		delete(a.test.running, pid)
		a.pmu.Unlock()
		exits <- testExit{s.ID, code}
	}
	a.pmu.Lock()
	err := a.start(p)
	if err == nil {
		// Before the reaper can take pmu to reap it.
		a.test.running[p.cur.pid] = s.Name
	}
	a.pmu.Unlock()
	if err != nil {
		a.emit(wire.Event{Kind: wire.KindExit, Proc: s.Name, Code: 127, Data: []byte(err.Error())})
		a.logf("%s: %v", s.Name, err)
		return false
	}
	return true
}

// scanTests reads the templates under roots, merging same-named ones (the
// first root's file wins a name clash). It returns each template (nil for
// one that cannot drive anything) and the guest path of each of its
// commands.
func scanTests(roots []string) (map[string]*composer.Template, map[string]map[string]string, error) {
	paths := map[string]map[string]string{}
	for _, root := range roots {
		found, err := composer.Scan(os.DirFS(root))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", root, err)
		}
		for tmpl, cmds := range found {
			if paths[tmpl] == nil {
				paths[tmpl] = map[string]string{}
			}
			for _, c := range cmds {
				if _, ok := paths[tmpl][c]; !ok {
					paths[tmpl][c] = path.Join(root, tmpl, c)
				}
			}
		}
	}
	templates := map[string]*composer.Template{}
	for name, cmds := range paths {
		t, _ := composer.NewTemplate(name, slices.Collect(maps.Keys(cmds)))
		templates[name] = t
	}
	return templates, paths, nil
}
