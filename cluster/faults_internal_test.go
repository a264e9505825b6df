package cluster

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/detvm/detvm/faults"
)

var testNodes = []string{"n1", "n2", "n3", "sidecar"}

func compile(t *testing.T, yaml string, seed uint64) faults.Schedule {
	t.Helper()
	spec, err := faults.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Compile(faults.Topology{Names: testNodes, Sidecar: 3}, time.Millisecond, 10*time.Second, []faults.Segment{{Seed: seed}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// describe renders a plan for comparison and for reading in failures.
func describe(p plan) string {
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintln(&b, l)
	}
	for _, n := range sortedKeys(p.cmds) {
		for _, c := range p.cmds[n] {
			fmt.Fprintf(&b, "cmd %s %s proc=%q ratio=%g delta=%d ppm=%d\n", testNodes[n], c.Op, c.Proc, c.Ratio, c.DeltaNS, c.PPM)
		}
	}
	for _, n := range sortedKeys(p.hold) {
		fmt.Fprintf(&b, "hold %s %+v\n", testNodes[n], p.hold[n])
	}
	for _, n := range sortedKeys(p.unhold) {
		fmt.Fprintf(&b, "unhold %s %+v\n", testNodes[n], p.unhold[n])
	}
	if p.setRules {
		fmt.Fprintf(&b, "rules %d\n", len(p.rules))
	}
	return b.String()
}

// TestFaultDriverCommands: each process, clock and node fault turns into
// the agent commands and holds docs/faults.md promises, and undoes them
// when it heals.
func TestFaultDriverCommands(t *testing.T) {
	s := compile(t, `
- {kind: kill, at: 10ms, for: 10ms, nodes: [n1]}
- {kind: pause, at: 10ms, for: 10ms, nodes: [n2], proc: p}
- {kind: throttle, at: 30ms, for: 10ms, nodes: [n3], ratio: 0.5}
- {kind: freeze, at: 30ms, for: 10ms, nodes: [n1]}
- {kind: clock-jump, at: 50ms, for: 10ms, nodes: [n1], offset: -1h}
- {kind: clock-skew, at: 50ms, for: 10ms, nodes: [n2], ppm: 100}
- {kind: clock-strobe, at: 70ms, for: 10ms, nodes: [n3], offset: 2s, period: 3ms}
- {kind: vm-freeze, at: 90ms, for: 5ms, nodes: [n2]}
- {kind: power-cut, at: 90ms, for: 5ms, nodes: [n3]}
- {kind: partition, at: 100ms, for: 5ms, groups: [[n1], [n2, n3]]}
`, 1)
	d := newFaultDriver(s, testNodes, time.Millisecond)
	var got strings.Builder
	for e := uint64(1); e < 120; e++ {
		if out := describe(d.at(e)); out != "" {
			fmt.Fprintf(&got, "-- %d\n%s", e, out)
		}
	}
	want := `-- 10
epoch=10 t=10ms start #0 kill nodes=[n1] epochs=[10,20)
epoch=10 t=10ms start #1 pause nodes=[n2] proc="p" epochs=[10,20)
cmd n1 kill proc="" ratio=0 delta=0 ppm=0
cmd n2 stop proc="p" ratio=0 delta=0 ppm=0
-- 20
epoch=20 t=20ms heal #0 kill nodes=[n1] epochs=[10,20)
epoch=20 t=20ms heal #1 pause nodes=[n2] proc="p" epochs=[10,20)
cmd n1 restart proc="" ratio=0 delta=0 ppm=0
cmd n2 cont proc="p" ratio=0 delta=0 ppm=0
-- 30
epoch=30 t=30ms start #2 throttle nodes=[n3] ratio=0.5 epochs=[30,40)
epoch=30 t=30ms start #3 freeze nodes=[n1] epochs=[30,40)
cmd n1 freeze proc="" ratio=0 delta=0 ppm=0
cmd n3 cpu-max proc="" ratio=0.5 delta=0 ppm=0
-- 40
epoch=40 t=40ms heal #2 throttle nodes=[n3] ratio=0.5 epochs=[30,40)
epoch=40 t=40ms heal #3 freeze nodes=[n1] epochs=[30,40)
cmd n1 thaw proc="" ratio=0 delta=0 ppm=0
cmd n3 cpu-max proc="" ratio=1 delta=0 ppm=0
-- 50
epoch=50 t=50ms start #4 clock-jump nodes=[n1] offset=-1h0m0s epochs=[50,60)
epoch=50 t=50ms start #5 clock-skew nodes=[n2] ppm=100 epochs=[50,60)
cmd n1 clock-step proc="" ratio=0 delta=-3600000000000 ppm=0
cmd n2 clock-freq proc="" ratio=0 delta=0 ppm=100
-- 60
epoch=60 t=60ms heal #4 clock-jump nodes=[n1] offset=-1h0m0s epochs=[50,60)
epoch=60 t=60ms heal #5 clock-skew nodes=[n2] ppm=100 epochs=[50,60)
cmd n1 clock-step proc="" ratio=0 delta=3600000000000 ppm=0
cmd n2 clock-freq proc="" ratio=0 delta=0 ppm=0
-- 70
epoch=70 t=70ms start #6 clock-strobe nodes=[n3] offset=2s period=3ms epochs=[70,80)
cmd n3 clock-step proc="" ratio=0 delta=2000000000 ppm=0
-- 73
cmd n3 clock-step proc="" ratio=0 delta=-2000000000 ppm=0
-- 76
cmd n3 clock-step proc="" ratio=0 delta=2000000000 ppm=0
-- 79
cmd n3 clock-step proc="" ratio=0 delta=-2000000000 ppm=0
-- 80
epoch=80 t=80ms heal #6 clock-strobe nodes=[n3] offset=2s period=3ms epochs=[70,80)
-- 90
epoch=90 t=90ms start #7 vm-freeze nodes=[n2] epochs=[90,95)
epoch=90 t=90ms start #8 power-cut nodes=[n3] epochs=[90,95)
hold n2 {fault:7 since:90 reboot:false}
hold n3 {fault:8 since:90 reboot:true}
-- 95
epoch=95 t=95ms heal #7 vm-freeze nodes=[n2] epochs=[90,95)
epoch=95 t=95ms heal #8 power-cut nodes=[n3] epochs=[90,95)
unhold n2 {fault:7 since:90 reboot:false}
unhold n3 {fault:8 since:90 reboot:true}
-- 100
epoch=100 t=100ms start #9 partition groups=[[n1] [n2 n3]] epochs=[100,105)
rules 4
-- 105
epoch=105 t=105ms heal #9 partition groups=[[n1] [n2 n3]] epochs=[100,105)
rules 0
`
	if got.String() != want {
		t.Errorf("plans:\n%s\nwant:\n%s", got.String(), want)
	}
}

// TestFaultDriverResume: a driver brought to epoch k by resume (a run
// continued from a snapshot) plans every later boundary exactly as the
// driver that ran from the start.
func TestFaultDriverResume(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		s := compile(t, "policy: random\n", seed)
		whole := newFaultDriver(s, testNodes, time.Millisecond)
		var plans []string
		for e := uint64(1); e <= 10000; e++ {
			plans = append(plans, describe(whole.at(e)))
		}
		for _, k := range []uint64{1, 777, 2500, 5003} {
			d := newFaultDriver(s, testNodes, time.Millisecond)
			d.resume(k)
			if !reflect.DeepEqual(d.held, whole0(s, k).held) {
				t.Fatalf("seed %d: holds after resume(%d) differ", seed, k)
			}
			for e := k + 1; e <= 10000; e++ {
				if got := describe(d.at(e)); got != plans[e-1] {
					t.Fatalf("seed %d resumed at %d: boundary %d:\n%s\nwant:\n%s", seed, k, e, got, plans[e-1])
				}
			}
		}
	}
}

// whole0 is a driver that ran boundaries 1..k one by one.
func whole0(s faults.Schedule, k uint64) *faultDriver {
	d := newFaultDriver(s, testNodes, time.Millisecond)
	for e := uint64(1); e <= k; e++ {
		d.at(e)
	}
	return d
}
