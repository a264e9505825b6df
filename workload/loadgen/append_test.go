package loadgen

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/auditor/linear"
	"github.com/detvm/detvm/auditor/listappend"
	"github.com/detvm/detvm/workload/history"
)

// txnStore is a fake transactional store of lists, serializable because
// one mutex covers each whole transaction.
type txnStore struct {
	mu    sync.Mutex
	lists map[string][]int64
	// stale, if set, makes every transaction start from a snapshot that
	// is refreshed only every other commit, and write back over the
	// current state: reads miss recent appends and appends get lost, a
	// store without conflict checks.
	stale map[string][]int64
	n     int
	hang  float64 // chance that the reply of a committed transaction is lost
	rng   *rand.Rand
}

func newTxnStore() *txnStore {
	return &txnStore{lists: map[string][]int64{}, rng: rand.New(rand.NewPCG(3, 4))}
}

func (s *txnStore) Do(ctx context.Context, _ string, op Op) (any, error) {
	txn, err := TxnValue(op)
	if err != nil {
		return nil, Definite(err)
	}
	s.mu.Lock()
	from := s.lists
	if s.stale != nil {
		from = s.stale
	}
	snap := map[string][]int64{}
	for _, k := range Keys(txn) {
		snap[k] = slices.Clone(from[k])
	}
	done, written := Apply(txn, snap)
	for _, k := range written {
		s.lists[k] = snap[k]
	}
	if s.n++; s.stale != nil && s.n%2 == 0 {
		s.stale = maps.Clone(s.lists)
	}
	hang := s.rng.Float64() < s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, NetError(ctx.Err())
	}
	return done, nil
}

// checkBound is what a 10 000-op check of a bundled workload's history may
// take here (issue: < 10 s on the 2-core machine).
const checkBound = 10 * time.Second

// TestListAppend10k: 10 000 transactions from the ListAppend generator
// (8 clients, 8 active keys retired after 32 appends) against a
// serializable store, some replies lost, pass the list-append check
// within the bound, and the history is dense enough to mean something.
func TestListAppend10k(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	s := newTxnStore()
	s.hang = 0.002
	st, ops := load(t, Config{Client: s, Generator: &ListAppend{}, Endpoints: []string{"n1"},
		Concurrency: 8, Ops: 10_000, Timeout: time.Millisecond, Seed: 1})
	count(t, st, ops)
	res, err := listappend.Check(ops, checkBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v; check: %s, %d txns, %d keys, %d edges in %v", st, res.Status, res.Txns, res.Keys, res.Edges, res.Elapsed)
	if res.Status != auditor.Passed {
		t.Fatalf("history of a serializable store: %s %s %+v", res.Status, res.Reason, res.Anomalies)
	}
	if st.Info == 0 {
		t.Errorf("no info ops: the test should cover indeterminate transactions")
	}
	// 8 keys × 32 appends each would be 256 appends; ~2.5 per txn × 10 000
	// is ~12 500, so keys must have been retired many times.
	if res.Keys < 100 {
		t.Errorf("%d keys: the generator did not retire keys", res.Keys)
	}
	if res.Edges < res.Txns {
		t.Errorf("%d edges for %d txns: too thin a graph to test anything", res.Edges, res.Txns)
	}
}

// TestListAppendStaleCaught: the same load against a store that reads
// stale snapshots and loses appends fails the check.
func TestListAppendStaleCaught(t *testing.T) {
	s := newTxnStore()
	s.stale = map[string][]int64{}
	st, ops := load(t, Config{Client: s, Generator: &ListAppend{Keys: 3}, Endpoints: []string{"n1"},
		Concurrency: 4, Ops: 500, Seed: 1})
	count(t, st, ops)
	res, err := listappend.Check(ops, checkBound)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != auditor.Failed || len(res.Anomalies) == 0 {
		t.Fatalf("stale store passed: %s %s", res.Status, res.Reason)
	}
	t.Logf("stale store: %d anomalies, first %s: %s", len(res.Anomalies), res.Anomalies[0].Type, res.Anomalies[0].Explanation)
}

// TestRegisters10k: 10 000 register operations from the Registers
// generator (8 clients, 3 keys, as the etcd example runs them) against a
// linearizable store, some replies lost, pass the linearizability check
// within the bound.
func TestRegisters10k(t *testing.T) {
	if testing.Short() {
		t.Skip("large history")
	}
	s := newStore()
	s.hang = 0.002
	st, ops := load(t, Config{Client: s, Generator: &Registers{Keys: []string{"x", "y", "z"}}, Endpoints: []string{"n1"},
		Concurrency: 8, Ops: 10_000, Timeout: time.Millisecond, Seed: 1})
	count(t, st, ops)
	res, err := linear.Check(ops, checkBound)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v; check: %s, %d ops in %v", st, res.Status, res.Ops, res.Elapsed)
	if res.Status != auditor.Passed {
		t.Fatalf("history of a linearizable store: %s %s", res.Status, res.Reason)
	}
	if st.Info == 0 {
		t.Errorf("no info ops: the test should cover indeterminate operations")
	}
}

// TestListAppendGenerator: transactions are 1..MaxTxnLen micro-ops;
// elements are unique per key and count up from 1; no key gets more than
// MaxAppends; the choices are a function of the rng.
func TestListAppendGenerator(t *testing.T) {
	draw := func() []history.Txn {
		g := &ListAppend{Keys: 2, MaxTxnLen: 3, MaxAppends: 5}
		rng := rand.New(rand.NewPCG(7, 7))
		var out []history.Txn
		for range 200 {
			txn, err := TxnValue(g.Next(0, rng))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, txn)
		}
		return out
	}
	a := draw()
	last := map[string]int64{}
	for _, txn := range a {
		if len(txn) < 1 || len(txn) > 3 {
			t.Fatalf("txn %v has %d micro-ops, want 1..3", txn, len(txn))
		}
		for _, m := range txn {
			if m.F != history.MicroAppend {
				continue
			}
			if m.Value != last[m.Key]+1 || m.Value > 5 {
				t.Fatalf("append %v after %d: want %d, at most 5", m, last[m.Key], last[m.Key]+1)
			}
			last[m.Key] = m.Value
		}
	}
	if len(last) < 10 {
		t.Errorf("%d keys used in 200 txns: keys are not retired", len(last))
	}
	b := draw()
	for i := range a {
		if a[i].String() != b[i].String() {
			t.Fatalf("txn %d: %v, then %v from the same seed", i, a[i], b[i])
		}
	}
}

// TestApply: reads see the transaction's own earlier appends, and only
// the keys appended to are reported written.
func TestApply(t *testing.T) {
	lists := map[string][]int64{"x": {1}}
	txn := history.Txn{history.ReadKey("x"), history.Append("x", 2), history.ReadKey("x"), history.ReadKey("y"), history.Append("y", 1)}
	done, written := Apply(txn, lists)
	if got, want := done.String(), "[r x [1], append x 2, r x [1 2], r y [], append y 1]"; got != want {
		t.Errorf("done %s, want %s", got, want)
	}
	if !slices.Equal(written, []string{"x", "y"}) {
		t.Errorf("written %v, want [x y]", written)
	}
	if _, err := TxnValue(Op{F: history.FRead}); err == nil {
		t.Errorf("TxnValue of a read: no error")
	}
}
