package listappend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
//	check [cancelled]   check the transactions in the input, one a line:
//	  TYPE MICRO...     TYPE ok, fail or info; MICRO append:KEY:V, r:KEY (not
//	                    read) or r:KEY:[V,...]. The transaction on line k is
//	                    op k: all invocations come first, then the completions
//	                    in line order, so every pair is concurrent and only
//	                    the values order them. With cancelled, the budget is
//	                    already spent.
//
// Run with -rewrite to regenerate the expected output.
func TestCheck(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "check" {
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			ops := parseTxns(t, d)
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
	fmt.Fprintf(&b, "%s txns=%d keys=%d edges=%d\n", r.Status, r.Txns, r.Keys, r.Edges)
	if r.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", r.Reason)
	}
	for _, a := range r.Anomalies {
		if len(a.Cycle) > 0 {
			fmt.Fprintf(&b, "%s:", a.Type)
			for _, s := range a.Cycle {
				fmt.Fprintf(&b, " op %d -%s %s %d->", s.Txn, s.Edge, s.Key, s.Value)
			}
			fmt.Fprintf(&b, " op %d\n", a.Cycle[0].Txn)
		} else {
			fmt.Fprintf(&b, "%s: ops %v key %s\n", a.Type, a.Txns, a.Key)
		}
		for _, l := range strings.Split(a.Explanation, "\n") {
			fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(l))
		}
	}
	return b.String()
}

func parseTxns(t *testing.T, d *datadriven.TestData) []history.Op {
	lines := strings.Split(strings.TrimSpace(d.Input), "\n")
	n := int64(len(lines))
	var invokes, completions []history.Op
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 {
			d.Fatalf(t, "line %d: want TYPE MICRO...", i+1)
		}
		var in, out history.Txn
		for _, tok := range f[1:] {
			m, err := parseMicro(tok)
			if err != nil {
				d.Fatalf(t, "line %d: %v", i+1, err)
			}
			out = append(out, m)
			if m.F == history.MicroRead {
				m = history.ReadKey(m.Key)
			}
			in = append(in, m)
		}
		typ := history.Type(f[0])
		if typ != history.OK {
			out = in
		}
		k := int64(i + 1)
		invokes = append(invokes, history.Op{Index: k - n - 1, Type: history.Invoke, Process: i + 1, F: history.FTxn, Value: mustJSON(t, in), Time: k - n - 1})
		completions = append(completions, history.Op{Index: k, Type: typ, Process: i + 1, F: history.FTxn, Value: mustJSON(t, out), Time: k})
	}
	return append(invokes, completions...)
}

func parseMicro(tok string) (history.MicroOp, error) {
	parts := strings.SplitN(tok, ":", 3)
	switch {
	case len(parts) == 3 && parts[0] == "append":
		var v int64
		if _, err := fmt.Sscan(parts[2], &v); err != nil {
			return history.MicroOp{}, fmt.Errorf("bad append %q", tok)
		}
		return history.Append(parts[1], v), nil
	case len(parts) == 2 && parts[0] == "r":
		return history.ReadKey(parts[1]), nil
	case len(parts) == 3 && parts[0] == "r":
		var l []int64
		if err := json.Unmarshal([]byte(parts[2]), &l); err != nil {
			return history.MicroOp{}, fmt.Errorf("bad read %q", tok)
		}
		return history.ReadResult(parts[1], l), nil
	}
	return history.MicroOp{}, fmt.Errorf("bad micro-op %q", tok)
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFromFile checks a small history as the Recorder writes it, with a
// transaction the history ended before answering: like an info, it counts
// as committed once a read saw it.
func TestFromFile(t *testing.T) {
	const file = `{"index":0,"type":"invoke","process":0,"f":"txn","value":[["append","x",1]],"time":0}
{"index":1,"type":"invoke","process":1,"f":"txn","value":[["r","x",null],["append","y",1]],"time":1}
{"index":2,"type":"invoke","process":2,"f":"read","key":"z","value":null,"time":2}
{"index":3,"type":"ok","process":1,"f":"txn","value":[["r","x",[1]],["append","y",1]],"time":3}
{"index":4,"type":"ok","process":2,"f":"read","key":"z","value":null,"time":4}
{"index":5,"type":"invoke","process":2,"f":"txn","value":[["r","y",null],["r","x",null]],"time":5}
{"index":6,"type":"ok","process":2,"f":"txn","value":[["r","y",[1]],["r","x",[]]],"time":6}
`
	ops, err := history.Read(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check(ops, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// op 6 saw y=[1] (so op 3 before it) but x=[] although op 3 had read
	// x=[1], appended by op 0 (never answered, but seen): read skew.
	got := format(res)
	if res.Status != auditor.Failed || len(res.Anomalies) != 1 || res.Anomalies[0].Type != GSingle {
		t.Fatalf("got %s", got)
	}
	if !strings.Contains(got, "op 0 -wr x 1-> op 3 -wr y 1-> op 6 -rw x 1-> op 0") {
		t.Fatalf("unexpected cycle: %s", got)
	}
}

func generate(t testing.TB, cfg sim.Config) []history.Op {
	t.Helper()
	raw, err := sim.ListAppend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := history.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// bigConfig is a workload-sized history: 10 000 transactions of 1-4
// micro-ops from 8 clients over 8 active keys (each retired after 64
// appends), 1% indeterminate and 5% aborted.
var bigConfig = sim.Config{Seed: 1, Ops: 10_000, Clients: 8, Keys: 8, MaxAppends: 64, InfoRate: 0.01, FailRate: 0.05}

// bound is the time a 10 000-op check must take at most on the project's
// 2-core machine, with room for a CPU soak running beside it.
const bound = 10 * time.Second

// TestLarge: a serializable 10 000-transaction history passes within the
// bound.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	ops := generate(t, bigConfig)
	res, err := Check(ops, bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10k txns: %s, %d txns, %d keys, %d edges in %v", res.Status, res.Txns, res.Keys, res.Edges, res.Elapsed)
	if res.Status != auditor.Passed {
		t.Fatalf("serializable history: %s", format(res))
	}
	if res.Edges < res.Txns/2 {
		t.Fatalf("only %d edges for %d txns: the graph is too thin to test anything", res.Edges, res.Txns)
	}
}

// TestLargeWithBug: the same history with one stale read turned into a
// lost update fails within the bound, with a cycle through that
// transaction.
func TestLargeWithBug(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	ops := generate(t, bigConfig)
	bad := injectLostUpdate(t, ops)
	res, err := Check(ops, bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10k txns with a lost update in op %d: %s in %v\n%s", bad, res.Status, res.Elapsed, format(res))
	if res.Status != auditor.Failed {
		t.Fatalf("lost update not found: %s", format(res))
	}
	found := false
	for _, a := range res.Anomalies {
		for _, s := range a.Cycle {
			found = found || s.Txn == bad
		}
	}
	if !found {
		t.Fatalf("no cycle through op %d: %s", bad, format(res))
	}
	verifyCycles(t, ops, res.Anomalies)
}

// injectLostUpdate finds, past the middle of the history, an ok
// transaction that reads a key and then appends to it, where the last
// element read was another transaction's; it drops that element from the
// read, as a store that read a stale snapshot and then wrote would. The
// transaction now both precedes that writer (it missed its append) and
// follows it (its own append comes later in the list): a cycle under any
// serial order. It returns the op's index.
func injectLostUpdate(t testing.TB, ops []history.Op) int64 {
	writer := map[[2]any]int64{}
	for _, op := range ops {
		if op.Type != history.OK {
			continue
		}
		txn, _ := history.ParseTxn(op.Value)
		for _, m := range txn {
			if m.F == history.MicroAppend {
				writer[[2]any{m.Key, m.Value}] = op.Index
			}
		}
	}
	for i := len(ops) / 2; i < len(ops); i++ {
		op := &ops[i]
		if op.Type != history.OK {
			continue
		}
		txn, err := history.ParseTxn(op.Value)
		if err != nil {
			continue
		}
		for j, m := range txn {
			n := len(m.Read)
			if m.F != history.MicroRead || n < 2 || writer[[2]any{m.Key, m.Read[n-1]}] == op.Index {
				continue
			}
			if !slices.ContainsFunc(txn[j+1:], func(a history.MicroOp) bool { return a.F == history.MicroAppend && a.Key == m.Key }) {
				continue
			}
			reads := 0
			for _, a := range txn {
				if a.F == history.MicroRead {
					reads++
				}
			}
			if reads > 1 {
				continue // a second read would expose the edit as internal
			}
			txn[j].Read = m.Read[:n-1]
			op.Value = mustJSON(t, txn)
			return op.Index
		}
	}
	t.Fatal("no transaction to break")
	return 0
}

// TestLargeWeakStore: a store that serves 5% of transactions' reads from a
// stale snapshot, over 5 keys that are never retired (so reads grow to
// hundreds of elements and the graph is dense with cycles), fails within
// the bound, and every cycle it reports holds up when checked against the
// history directly.
func TestLargeWeakStore(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	cfg := bigConfig
	cfg.Keys, cfg.MaxAppends, cfg.StaleRate = 5, 1_000_000, 0.05
	ops := generate(t, cfg)
	res, err := Check(ops, bound)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, a := range res.Anomalies {
		counts[a.Type]++
	}
	t.Logf("10k txns, weak store: %s in %v, %d edges, anomalies %v", res.Status, res.Elapsed, res.Edges, counts)
	if res.Status != auditor.Failed || counts[GSingle]+counts[G2Item] == 0 {
		t.Fatalf("weak store: %s %s %v", res.Status, res.Reason, counts)
	}
	verifyCycles(t, ops, res.Anomalies)
}

// verifyCycles checks each step of each cycle against the raw history,
// independently of the checker's graph: a ww step's next transaction
// appended the value after one of this transaction's appends in the key's
// longest read (or after the whole read, if nobody read the value); a wr
// step's next transaction read a list ending in this one's append; an rw
// step's transaction read the key without the next one's append.
func verifyCycles(t *testing.T, ops []history.Op, as []Anomaly) {
	pairs, err := history.Pairs(ops)
	if err != nil {
		t.Fatal(err)
	}
	txns := map[int64]history.Txn{}
	longest := map[string][]int64{}
	for _, p := range pairs {
		raw := p.Invoke.Value
		if p.Completion.Type == history.OK {
			raw = p.Completion.Value
		}
		txns[p.ID()], _ = history.ParseTxn(raw)
		if p.Completion.Type != history.OK {
			continue
		}
		for _, m := range txns[p.ID()] {
			if m.F == history.MicroRead && len(m.Read) > len(longest[m.Key]) {
				longest[m.Key] = m.Read
			}
		}
	}
	appended := func(id int64, k string) []int64 {
		var vs []int64
		for _, m := range txns[id] {
			if m.F == history.MicroAppend && m.Key == k {
				vs = append(vs, m.Value)
			}
		}
		return vs
	}
	for _, a := range as {
		for i, s := range a.Cycle {
			next := a.Cycle[(i+1)%len(a.Cycle)].Txn
			ok := false
			switch s.Edge {
			case WW:
				pos := slices.Index(longest[s.Key], s.Value)
				for _, u := range appended(s.Txn, s.Key) {
					pu := slices.Index(longest[s.Key], u)
					ok = ok || (pu >= 0 && (pu < pos || pos < 0))
				}
				ok = ok && slices.Contains(appended(next, s.Key), s.Value)
			case WR:
				ok = slices.Contains(appended(s.Txn, s.Key), s.Value)
				seen := false
				for _, m := range txns[next] {
					seen = seen || (m.F == history.MicroRead && m.Key == s.Key && len(m.Read) > 0 && m.Read[len(m.Read)-1] == s.Value)
				}
				ok = ok && seen
			case RW:
				missed := false
				for _, m := range txns[s.Txn] {
					missed = missed || (m.F == history.MicroRead && m.Key == s.Key && !slices.Contains(m.Read, s.Value))
				}
				ok = missed && slices.Contains(appended(next, s.Key), s.Value)
			}
			if !ok {
				t.Fatalf("%s step %d (op %d -%s %s %d-> op %d) does not hold:\n%s", a.Type, i, s.Txn, s.Edge, s.Key, s.Value, next, a.Explanation)
			}
		}
	}
}

// TestBudget: a check that runs out of budget part-way gives Unknown with
// the phase it was in, never a verdict, and stops promptly.
func TestBudget(t *testing.T) {
	cfg := bigConfig
	cfg.Keys, cfg.MaxAppends, cfg.StaleRate = 5, 1_000_000, 0.05
	ops := generate(t, cfg)
	const budget = 20 * time.Millisecond
	res, err := Check(ops, budget)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s after %v: %s", res.Status, res.Elapsed, res.Reason)
	if res.Status != auditor.Unknown || !strings.Contains(res.Reason, "time budget exhausted while") {
		t.Fatalf("%v budget: %s", budget, format(res))
	}
	if res.Elapsed > budget+time.Second {
		t.Fatalf("took %v to notice a budget of %v", res.Elapsed, budget)
	}
}

// TestDeterministic: the same history gives the same result, anomalies in
// the same order, run after run (maps are iterated in random order).
func TestDeterministic(t *testing.T) {
	ops := generate(t, sim.Config{Seed: 4, Ops: 3000, Clients: 8, Keys: 6, InfoRate: 0.02, FailRate: 0.05})
	injectLostUpdate(t, ops)
	var first string
	for i := range 5 {
		res, err := Check(ops, bound)
		if err != nil {
			t.Fatal(err)
		}
		got := format(res)
		if i == 0 {
			first = got
			continue
		}
		if got != first {
			t.Fatalf("run %d differs:\n%s\nvs\n%s", i, got, first)
		}
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
