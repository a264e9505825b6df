package faults

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var testTopo = Topology{Names: []string{"n1", "n2", "n3", "n4", "n5", "sidecar"}, Sidecar: 5}

// randomPolicyYAML draws a policy's settings for the property tests.
func randomPolicyYAML(r *rand.Rand) (text string, maxConcurrent int, quiet, finalHeal time.Duration) {
	maxConcurrent = 1 + r.IntN(3)
	quiet = time.Duration(r.IntN(4)) * 250 * time.Millisecond
	finalHeal = time.Duration(r.IntN(4)) * time.Second
	window := []string{"250ms", "1s", "3s"}[r.IntN(3)]
	var rates []string
	for _, k := range kinds {
		if r.IntN(2) == 0 {
			rates = append(rates, fmt.Sprintf("%s: %g", k, float64(r.IntN(20))/10))
		}
	}
	text = fmt.Sprintf("policy: {window: %s, max_concurrent: %d, quiet: %v, final_heal: %v, min: 50ms, max: 2s, rates: {%s}}",
		window, maxConcurrent, quiet, finalHeal, strings.Join(rates, ", "))
	return text, maxConcurrent, quiet, finalHeal
}

func mustParse(t *testing.T, text string) *Spec {
	t.Helper()
	s, err := parseString(text)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return s
}

func mustCompile(t *testing.T, s *Spec, topo Topology, epoch, duration time.Duration, segs ...Segment) Schedule {
	t.Helper()
	sched, err := s.Compile(topo, epoch, duration, segs)
	if err != nil {
		t.Fatal(err)
	}
	return sched
}

// TestPolicyProperties checks, over 200 seeds and policies, what a policy
// promises: order, IDs, max_concurrent, quiet, final heal, no sidecar, no two
// process/node/clock faults on one node at once, settings in range.
func TestPolicyProperties(t *testing.T) {
	const epoch, duration = time.Millisecond, 30 * time.Second
	total := 0
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 0))
		text, maxC, quiet, heal := randomPolicyYAML(r)
		sched := mustCompile(t, mustParse(t, text), testTopo, epoch, duration, Segment{Seed: seed})
		total += len(sched)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d, %s:\n%s\n%s", seed, text, fmt.Sprintf(format, args...), printFaults(sched))
		}
		healEpoch := uint64((duration - heal) / epoch)
		if heal == 0 {
			healEpoch = uint64(duration/epoch) + 1
		}
		for i, f := range sched {
			if f.ID != i {
				fail("fault %d has ID %d", i, f.ID)
			}
			if i > 0 && sched[i-1].Start > f.Start {
				fail("not sorted at %d", i)
			}
			if f.End <= f.Start || f.End > healEpoch {
				fail("%v: bad end (final heal from %d)", f, healEpoch)
			}
			active := 0
			for _, g := range sched[:i] {
				if g.End > f.Start {
					active++
					if g.Kind.Class() != ClassNetwork && f.Kind.Class() != ClassNetwork && overlaps(g.Nodes, f.Nodes) {
						fail("%v and %v overlap on a node", g, f)
					}
				} else if f.Start < g.End+uint64(quiet/epoch) {
					fail("%v starts within quiet %v of the end of %v", f, quiet, g)
				}
			}
			if active >= maxC {
				fail("%v starts with %d faults active", f, active)
			}
			checkRandomFault(t, f, fail)
		}
	}
	if total < 1000 {
		t.Errorf("only %d faults over 200 seeds; the test checks little", total)
	}
}

// checkRandomFault checks that f targets no sidecar and has its settings in
// the documented ranges.
func checkRandomFault(t *testing.T, f Fault, fail func(string, ...any)) {
	t.Helper()
	all := slices.Concat(f.Nodes, f.To)
	for _, g := range f.Groups {
		all = append(all, g...)
	}
	if len(all) == 0 || slices.Contains(all, testTopo.Sidecar) {
		fail("%v: targets nothing or the sidecar", f)
	}
	in := func(ok bool) {
		if !ok {
			fail("%v: setting out of range", f)
		}
	}
	switch f.Kind {
	case Loss, Duplicate:
		in(f.Percent >= 10 && f.Percent <= 50)
	case Corrupt:
		in(f.Percent >= 1 && f.Percent <= 10)
	case Reorder:
		in(f.Percent >= 10 && f.Percent <= 50 && f.Delay >= 5*time.Millisecond && f.Delay <= 50*time.Millisecond)
	case Delay:
		in(f.Delay >= 5*time.Millisecond && f.Delay <= 100*time.Millisecond && f.Jitter >= 0 && f.Jitter <= f.Delay)
	case Clog:
		in(f.Rate >= 10*1024 && f.Rate <= 100*1024)
	case Throttle:
		in(f.Ratio >= 0.1 && f.Ratio <= 0.5)
	case ClockJump:
		a := max(f.Offset, -f.Offset)
		in(a >= time.Second && a <= 10*time.Minute)
	case ClockStrobe:
		in(f.Offset >= 50*time.Millisecond && f.Offset <= 5*time.Second && f.Period >= 10*time.Millisecond && f.Period <= 200*time.Millisecond)
	case ClockSkew:
		a := max(f.PPM, -f.PPM)
		in(a >= 50 && a <= MaxPPM)
	}
	if f.Kind.Class() != ClassNetwork && (len(f.Nodes) != 1 || f.Proc != "") {
		fail("%v: want one node and the main process", f)
	}
}

func TestSeeds(t *testing.T) {
	spec, _ := Builtin("random")
	differ := 0
	for seed := range uint64(50) {
		a := mustCompile(t, spec, testTopo, time.Millisecond, time.Minute, Segment{Seed: seed})
		b := mustCompile(t, spec, testTopo, time.Millisecond, time.Minute, Segment{Seed: seed})
		if printFaults(a) != printFaults(b) {
			t.Fatalf("seed %d: two compilations differ", seed)
		}
		c := mustCompile(t, spec, testTopo, time.Millisecond, time.Minute, Segment{Seed: seed + 1000})
		if printFaults(a) != printFaults(c) {
			differ++
		}
	}
	if differ != 50 {
		t.Errorf("only %d of 50 pairs of seeds give different schedules", differ)
	}
}

// TestBranchProperty: with segments [{a, 0}, {b, E}], the faults starting
// before the first window boundary at or after E are those of seed a alone;
// those after it are new.
func TestBranchProperty(t *testing.T) {
	const epoch, duration = time.Millisecond, 40 * time.Second
	changed := 0
	for i := range uint64(200) {
		r := rand.New(rand.NewPCG(i, 1))
		text, _, _, _ := randomPolicyYAML(r)
		spec := mustParse(t, text)
		window := spec.policy.window
		e := 1 + r.Uint64N(uint64(duration/epoch)-1)
		a, b := r.Uint64(), r.Uint64()
		base := mustCompile(t, spec, testTopo, epoch, duration, Segment{Seed: a})
		branched := mustCompile(t, spec, testTopo, epoch, duration, Segment{Seed: a}, Segment{Seed: b, FromEpoch: e})
		we := uint64(window / epoch)
		boundary := (e + we - 1) / we * we
		before := func(s Schedule) string {
			var out []Fault
			for _, f := range s {
				if f.Start < boundary {
					out = append(out, f)
				}
			}
			return printFaults(out)
		}
		if before(base) != before(branched) {
			t.Fatalf("%s, branch at %d (window boundary %d): the faults before it differ:\n%s\nvs\n%s", text, e, boundary, before(base), before(branched))
		}
		if printFaults(base) != printFaults(branched) {
			changed++
		}
	}
	if changed < 150 {
		t.Errorf("only %d of 200 branches changed the schedule after the branch", changed)
	}
}

// TestHandBranch: a hand-written fault's random choices come from the
// segment covering its start.
func TestHandBranch(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 40 {
		fmt.Fprintf(&b, "{kind: kill, at: %dms, for: 10ms}, {kind: partition, at: %dms, for: 10ms, mode: halves},", i*100, i*100)
	}
	b.WriteString("]")
	spec := mustParse(t, b.String())
	base := mustCompile(t, spec, testTopo, time.Millisecond, 5*time.Second, Segment{Seed: 1})
	branched := mustCompile(t, spec, testTopo, time.Millisecond, 5*time.Second, Segment{Seed: 1}, Segment{Seed: 2, FromEpoch: 2000})
	changed := false
	for i := range base {
		if base[i].Start < 2000 && base[i].String() != branched[i].String() {
			t.Errorf("before the branch: %v became %v", base[i], branched[i])
		}
		changed = changed || base[i].String() != branched[i].String()
	}
	if !changed {
		t.Error("the branch changed nothing")
	}
}

// TestPartitionShapes checks the modes' shapes on 2 to 10 nodes over many
// seeds, through the connectivity NetRules gives.
func TestPartitionShapes(t *testing.T) {
	for m := 2; m <= 10; m++ {
		nodes := make([]int, m)
		for i := range nodes {
			nodes[i] = i
		}
		for _, mode := range modes {
			if (mode == ModeBridge && m < 3) || (mode == ModeMajoritiesRing && m < 4) {
				continue
			}
			for seed := range uint64(30) {
				groups := shape(newGen(seed, 0), mode, nodes)
				see := connectivity(Fault{Kind: Partition, Groups: groups}, m)
				desc := fmt.Sprintf("%s on %d nodes, seed %d: %v", mode, m, seed, groups)
				checkShape(t, mode, m, see, desc)
			}
		}
	}
}

// connectivity returns see[a][b]: a's frames reach b (a == b included).
func connectivity(f Fault, n int) [][]bool {
	see := make([][]bool, n)
	for a := range see {
		see[a] = make([]bool, n)
		for b := range see[a] {
			see[a][b] = true
		}
	}
	for _, r := range NetRules([]Fault{f}, n, time.Millisecond) {
		see[r.Src][r.Dst] = false
	}
	return see
}

func checkShape(t *testing.T, mode string, m int, see [][]bool, desc string) {
	t.Helper()
	count := make([]int, m)
	for a := range m {
		for b := range m {
			if see[a][b] != see[b][a] {
				t.Fatalf("%s: not symmetric", desc)
			}
			if see[a][b] {
				count[a]++
			}
		}
	}
	// components returns the sizes of the cliques, if see is a union of
	// disjoint cliques.
	cliques := func() []int {
		var sizes []int
		done := make([]bool, m)
		for a := range m {
			if done[a] {
				continue
			}
			size := 0
			for b := range m {
				if see[a][b] {
					if done[b] || count[b] != count[a] {
						t.Fatalf("%s: not disjoint cliques", desc)
					}
					done[b] = true
					size++
				}
			}
			sizes = append(sizes, size)
		}
		slices.Sort(sizes)
		return sizes
	}
	majority := m/2 + 1
	switch mode {
	case ModeIsolate:
		if got := cliques(); !slices.Equal(got, []int{1, m - 1}) {
			t.Fatalf("%s: cliques %v", desc, got)
		}
	case ModeHalves:
		if got := cliques(); !slices.Equal(got, []int{m / 2, m - m/2}) {
			t.Fatalf("%s: cliques %v", desc, got)
		}
	case ModeMajority:
		got := cliques()
		if len(got) != 2 || got[0] < 1 || got[1] < majority && m > 2 {
			t.Fatalf("%s: cliques %v", desc, got)
		}
	case ModeMajoritiesRing:
		seen := map[string]bool{}
		for a := range m {
			if count[a] < majority || count[a] == m {
				t.Fatalf("%s: node %d sees %d of %d", desc, a, count[a], m)
			}
			key := fmt.Sprint(see[a])
			if seen[key] {
				t.Fatalf("%s: two nodes see the same majority", desc)
			}
			seen[key] = true
		}
	case ModeBridge:
		bridges := 0
		for a := range m {
			if count[a] == m {
				bridges++
			}
		}
		if bridges != 1 {
			t.Fatalf("%s: %d nodes see everyone", desc, bridges)
		}
	}
}
