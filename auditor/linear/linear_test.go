package linear

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/auditor/internal/sim"
	"github.com/detvm/detvm/workload/history"
)

// TestCheck runs the scripts in testdata/. Commands:
//
//	check [cancelled]     check the history in the input, one operation a line:
//	  pP CALL RET TYPE F KEY [VALUE]
//	                      P the process, CALL and RET the invocation and
//	                      completion times (RET "-": the history ends first),
//	                      TYPE ok, fail or info. VALUE is JSON: the int written,
//	                      the [from,to] of a cas, or what an ok read returned.
//	                      With cancelled, the budget is already spent.
//
// Run with -rewrite to regenerate the expected output.
func TestCheck(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "check" {
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			ops := parseHistory(t, d)
			ctx := context.Background()
			if d.HasArg("cancelled") {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			res, err := CheckContext(ctx, ops)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return format(res)
		})
	})
}

func format(r Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ops=%d\n", r.Status, r.Ops)
	if r.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", r.Reason)
	}
	for _, k := range r.Keys {
		fmt.Fprintf(&b, "key %s: longest linearizable prefix has %d of %d ops, leaving the register %s\n", k.Key, len(k.Longest), k.Total, k.State)
		for _, op := range k.Longest {
			fmt.Fprintf(&b, "  %v\n", op)
		}
		for _, op := range k.Bad {
			fmt.Fprintf(&b, "  cannot be next: %v\n", op)
		}
	}
	return b.String()
}

type event struct {
	op   history.Op
	line int
	seq  int // invocation before completion at the same time
}

// parseHistory builds a history from interval lines: every line gives an
// invocation and (usually) a completion; both are sorted by time into one
// history and numbered.
func parseHistory(t *testing.T, d *datadriven.TestData) []history.Op {
	var evs []event
	for n, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "p") {
			d.Fatalf(t, "line %d: want pP CALL RET TYPE F KEY [VALUE]", n+1)
		}
		proc, err1 := strconv.Atoi(f[0][1:])
		call, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			d.Fatalf(t, "line %d: bad process or time", n+1)
		}
		typ, fn, key := history.Type(f[3]), f[4], f[5]
		value := json.RawMessage("null")
		if len(f) > 6 {
			value = json.RawMessage(strings.Join(f[6:], ""))
		}
		invValue, doneValue := value, value
		if fn == history.FRead {
			invValue = json.RawMessage("null")
		}
		evs = append(evs, event{history.Op{Type: history.Invoke, Process: proc, F: fn, Key: key, Value: invValue, Time: call}, n, 0})
		if f[2] != "-" {
			ret, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				d.Fatalf(t, "line %d: bad return time", n+1)
			}
			evs = append(evs, event{history.Op{Type: typ, Process: proc, F: fn, Key: key, Value: doneValue, Time: ret}, n, 1})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.op.Time != b.op.Time {
			return a.op.Time < b.op.Time
		}
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		return a.line < b.line
	})
	ops := make([]history.Op, len(evs))
	for i, e := range evs {
		ops[i] = e.op
		ops[i].Index = int64(i)
	}
	return ops
}

func generate(t testing.TB, cfg sim.Config) []history.Op {
	t.Helper()
	raw, err := sim.Registers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := history.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// bigConfig is a workload-sized history: 10 000 operations from 8 clients
// over 8 registers, 1% of them indeterminate.
var bigConfig = sim.Config{Seed: 1, Ops: 10_000, Clients: 8, Keys: 8, InfoRate: 0.01}

// bound is the time a 10 000-op check must take at most on the project's
// 2-core machine, with room for a CPU soak running beside it.
const bound = 10 * time.Second

// TestLarge: a correct 10 000-op history passes within the bound, and the
// same history with one corrupted read fails within it, naming the read.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	ops := generate(t, bigConfig)
	res, err := Check(ops, bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10k correct: %s, %d ops checked in %v", res.Status, res.Ops, res.Elapsed)
	if res.Status != auditor.Passed {
		t.Fatalf("correct history: %s", format(res))
	}

	cfg := bigConfig
	cfg.Corrupt = 1
	ops = generate(t, cfg)
	res, err = Check(ops, bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10k with a corrupt read: %s in %v", res.Status, res.Elapsed)
	if res.Status != auditor.Failed || len(res.Bad) != 1 || res.Bad[0].F != history.FRead {
		t.Fatalf("corrupted history: %s", format(res))
	}
	if v, _, _ := history.ParseRegister(res.Bad[0].Value); v < 1000 {
		t.Fatalf("blamed %v, not the corrupted read", res.Bad[0])
	}
}

// TestBudget: a search that runs out of budget gives Unknown, never a
// verdict, and stops promptly. One key and 30% indeterminate writes (each
// may take effect at any later point) plus one bad read make porcupine's
// search exponential: it would run far past the budget.
func TestBudget(t *testing.T) {
	ops := generate(t, sim.Config{Seed: 5, Ops: 3000, Clients: 10, Keys: 1, InfoRate: 0.3, Corrupt: 1})
	const budget = 300 * time.Millisecond
	res, err := Check(ops, budget)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s after %v: %s", res.Status, res.Elapsed, res.Reason)
	if res.Status != auditor.Unknown || res.Reason == "" || len(res.Bad) != 0 {
		t.Fatalf("%v budget: %s", budget, format(res))
	}
	if res.Elapsed > budget+2*time.Second {
		t.Fatalf("took %v to notice a budget of %v", res.Elapsed, budget)
	}
}

// TestWriteHTML: the visualization is written, for passing and failing
// histories alike.
func TestWriteHTML(t *testing.T) {
	dir := t.TempDir()
	for _, corrupt := range []int{0, 1} {
		ops := generate(t, sim.Config{Seed: 3, Ops: 200, Clients: 4, Keys: 2, Corrupt: corrupt})
		res, err := Check(ops, bound)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("lin-%d.html", corrupt))
		if err := res.WriteHTML(path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<html")) || !bytes.Contains(b, []byte("read(")) {
			t.Fatalf("%s does not look like porcupine's view", path)
		}
	}
	if err := (Result{}).WriteHTML(filepath.Join(dir, "none.html")); err == nil {
		t.Fatal("WriteHTML without a check did not fail")
	}
}

func BenchmarkCheck10k(b *testing.B) {
	ops := generate(b, bigConfig)
	b.ResetTimer()
	for range b.N {
		res, err := Check(ops, 0)
		if err != nil || res.Status != auditor.Passed {
			b.Fatal(err, res.Status)
		}
	}
}
