package faults

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/scheduler"
)

// TestData runs the scripts in testdata/. Commands:
//
//	topology names=a,b,c [sidecar=I]      the nodes; sidecar index (default -1)
//	compile [seed=S] [branch=SEED@EPOCH ...] [epoch=D] [duration=D]
//	  <YAML: what faults: holds>           print the schedule, or the error
//	active at=E | starting at=E | ending at=E   faults of the last schedule
//	netrules at=E [epoch=D]                rules for the faults active at E
//	sees id=N                              for a partition of the last schedule,
//	                                       whom each node exchanges frames with
//
// epoch defaults to 1ms and duration to 10s. Run with -rewrite to
// regenerate the expected output.
func TestData(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		topo := Topology{Names: []string{"n1", "n2", "n3"}, Sidecar: -1}
		var sched Schedule
		epoch := time.Millisecond
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "topology":
				topo = Topology{Sidecar: -1}
				var names string
				d.ScanArgs(t, "names", &names)
				topo.Names = strings.Split(names, ",")
				d.MaybeScanArgs(t, "sidecar", &topo.Sidecar)
				return "ok"

			case "compile":
				seed := uint64(1)
				d.MaybeScanArgs(t, "seed", &seed)
				segs := []Segment{{Seed: seed}}
				if arg, ok := d.Arg("branch"); ok {
					for _, v := range arg.Vals {
						s, e, _ := strings.Cut(v, "@")
						segs = append(segs, Segment{Seed: mustUint(t, s), FromEpoch: mustUint(t, e)})
					}
				}
				epoch = durationArg(t, d, "epoch", time.Millisecond)
				duration := durationArg(t, d, "duration", 10*time.Second)
				spec, err := parseString(d.Input)
				if err == nil {
					sched, err = spec.Compile(topo, epoch, duration, segs)
				}
				if err != nil {
					sched = nil
					return "error: " + err.Error()
				}
				return printFaults(sched)

			case "active", "starting", "ending":
				var at uint64
				d.ScanArgs(t, "at", &at)
				f := map[string]func(uint64) []Fault{"active": sched.Active, "starting": sched.Starting, "ending": sched.Ending}[d.Cmd]
				return printFaults(f(at))

			case "netrules":
				var at uint64
				d.ScanArgs(t, "at", &at)
				ep := durationArg(t, d, "epoch", epoch)
				var b strings.Builder
				for _, r := range NetRules(sched.Active(at), len(topo.Names), ep) {
					b.WriteString(ruleString(r))
					b.WriteByte('\n')
				}
				if b.Len() == 0 {
					return "no rules\n"
				}
				return b.String()

			case "sees":
				var id int
				d.ScanArgs(t, "id", &id)
				return sees(sched[id], len(topo.Names))
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func durationArg(t *testing.T, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	var s string
	if !d.MaybeScanArgs(t, key, &s) {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return v
}

// parseString parses text as the value of faults: in test.yaml.
func parseString(text string) (*Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	return ParseSpec(&doc, "test.yaml", "faults")
}

func printFaults(fs []Fault) string {
	if len(fs) == 0 {
		return "no faults\n"
	}
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// ruleString prints r's fields that are set; it is the tests' own so that
// they do not depend on scheduler's format.
func ruleString(r scheduler.Rule) string {
	s := fmt.Sprintf("%d->%d", r.Src, r.Dst)
	if r.FromEpoch != 0 || r.UntilEpoch != 0 {
		s += fmt.Sprintf(" epochs=[%d,%d)", r.FromEpoch, r.UntilEpoch)
	}
	if r.Drop {
		s += " drop"
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"delay", r.DelayEpochs}, {"jitter", r.JitterEpochs}, {"loss-ppm", uint64(r.LossPPM)},
		{"duplicate-ppm", uint64(r.DuplicatePPM)}, {"reorder-ppm", uint64(r.ReorderPPM)},
		{"reorder-epochs", r.ReorderEpochs}, {"corrupt-ppm", uint64(r.CorruptPPM)},
		{"bytes-per-epoch", r.RateBytesPerEpoch},
	} {
		if f.v != 0 {
			s += fmt.Sprintf(" %s=%d", f.name, f.v)
		}
	}
	return s
}

// sees prints, for each of n nodes, the nodes a partition lets it send to,
// from the rules NetRules makes of it.
func sees(f Fault, n int) string {
	dropped := map[[2]int]bool{}
	for _, r := range NetRules([]Fault{f}, n, time.Millisecond) {
		dropped[[2]int{r.Src, r.Dst}] = true
	}
	var b strings.Builder
	for a := range n {
		fmt.Fprintf(&b, "%d ->", a)
		for c := range n {
			if c != a && !dropped[[2]int{a, c}] {
				fmt.Fprintf(&b, " %d", c)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}
