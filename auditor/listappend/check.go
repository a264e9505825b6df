package listappend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/workload/history"
)

// Check decides whether a history of list-append transactions (ops with f
// "txn"; others are ignored) is serializable, within timeout (0: no limit).
// It returns an error only for a malformed history.
func Check(ops []history.Op, timeout time.Duration) (Result, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	res, err := CheckContext(ctx, ops)
	res.Elapsed = time.Since(start)
	return res, err
}

// CheckContext is Check with the budget as a context. The analysis itself
// reads no clock: it polls ctx, and once ctx is done it returns Unknown
// with the phase it was in, keeping the anomalies found so far.
func CheckContext(ctx context.Context, ops []history.Op) (Result, error) {
	c := &checker{ctx: ctx, writers: map[elem]writer{}, reads: map[string][]read{}}
	err := c.run(ops)
	res := Result{Txns: len(c.txns), Keys: len(c.keys), Edges: len(c.edges), Anomalies: c.anomalies}
	sortAnomalies(res.Anomalies)
	var budget *budgetError
	switch {
	case errors.As(err, &budget):
		res.Status, res.Reason = auditor.Unknown, budget.Error()
		return res, nil
	case err != nil:
		return Result{}, err
	case len(res.Anomalies) > 0:
		res.Status = auditor.Failed
	default:
		res.Status = auditor.Passed
	}
	return res, nil
}

type budgetError struct {
	phase string
	err   error
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("time budget exhausted while %s: %v", e.phase, e.err)
}

type txn struct {
	id     int64
	status history.Type
	ops    history.Txn // the completion's for ok, the invocation's otherwise
	// committed: ok, or info and seen by some read (if a read saw it, it
	// happened). Only committed transactions are nodes of the graph.
	committed bool
	node      int32
}

// elem is one appended element: key and value identify its writer.
type elem struct {
	key string
	v   int64
}

type writer struct {
	t     int32 // index into checker.txns
	final bool  // the writer's last append to the key
}

// read is one read micro-op of a committed transaction.
type read struct {
	t    int32
	list []int64
}

type checker struct {
	ctx   context.Context
	polls int
	phase string

	txns      []txn
	writers   map[elem]writer
	reads     map[string][]read // per key, in transaction order
	keys      []string          // sorted
	bad       map[string]bool   // keys whose version order cannot be trusted
	anomalies []Anomaly

	nodes []int32 // node -> index into txns
	edges map[[2]int32]*edge
	adj   [][]arc // node -> outgoing arcs, by target node
	scr   *scratch
}

// poll checks the budget every thousand steps or so: often enough to stop
// within milliseconds, rarely enough to cost nothing.
func (c *checker) poll() error {
	c.polls++
	if c.polls&1023 != 0 {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return &budgetError{phase: c.phase, err: err}
	}
	return nil
}

func (c *checker) run(ops []history.Op) error {
	if err := c.ctx.Err(); err != nil {
		return &budgetError{phase: "starting", err: err}
	}
	c.phase = "reading transactions"
	if err := c.collect(ops); err != nil {
		return err
	}
	c.phase = "checking reads"
	if err := c.checkReads(); err != nil {
		return err
	}
	c.phase = "checking each key's reads"
	orders, err := c.checkKeys()
	if err != nil {
		return err
	}
	c.phase = "building the dependency graph"
	if err := c.buildGraph(orders); err != nil {
		return err
	}
	c.phase = "searching for cycles"
	return c.findCycles()
}

// collect turns the history into transactions, sorted by id, and indexes
// every append by its element.
func (c *checker) collect(ops []history.Op) error {
	pairs, err := history.Pairs(ops)
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, p := range pairs {
		if p.Invoke.F != history.FTxn {
			continue
		}
		if err := c.poll(); err != nil {
			return err
		}
		t := txn{id: p.ID(), status: p.Completion.Type, node: -1}
		raw := p.Invoke.Value
		if t.status == history.OK {
			raw = p.Completion.Value
		}
		if t.ops, err = history.ParseTxn(raw); err != nil {
			return fmt.Errorf("listappend: op %d: %w", t.id, err)
		}
		for _, m := range t.ops {
			keys[m.Key] = true
			if t.status == history.OK && m.F == history.MicroRead && m.Read == nil {
				return fmt.Errorf("listappend: op %d: ok transaction has a read of %s without a value", t.id, m.Key)
			}
		}
		t.committed = t.status == history.OK
		c.txns = append(c.txns, t)
	}
	sort.Slice(c.txns, func(i, j int) bool { return c.txns[i].id < c.txns[j].id })
	for k := range keys {
		c.keys = append(c.keys, k)
	}
	sort.Strings(c.keys)
	for i, t := range c.txns {
		last := map[string]int{}
		for j, m := range t.ops {
			if m.F == history.MicroAppend {
				last[m.Key] = j
			}
		}
		for j, m := range t.ops {
			if m.F != history.MicroAppend {
				continue
			}
			e := elem{m.Key, m.Value}
			if w, dup := c.writers[e]; dup {
				return fmt.Errorf("listappend: %d appended to %s by both op %d and op %d; elements must be unique per key", m.Value, m.Key, c.txns[w.t].id, t.id)
			}
			c.writers[e] = writer{t: int32(i), final: last[m.Key] == j}
		}
	}
	return nil
}

// checkReads checks each committed transaction against itself and
// collects its reads per key for checkKeys. It is the only pass over all
// transactions; the per-element work happens per key.
func (c *checker) checkReads() error {
	c.bad = map[string]bool{}
	for i := range c.txns {
		t := &c.txns[i]
		if t.status != history.OK {
			continue
		}
		if err := c.poll(); err != nil {
			return err
		}
		c.checkInternal(t)
		for _, m := range t.ops {
			if m.F == history.MicroRead {
				c.reads[m.Key] = append(c.reads[m.Key], read{t: int32(i), list: m.Read})
			}
		}
	}
	return nil
}

// scan is what one list's elements say, position by position.
type scan struct {
	garbage []int // positions of elements nobody appended
	aborted []int // positions of the first element of each failed writer
	dupAt   int   // position of the first repeated element; -1 if none
}

// scanList classifies every element of list, and marks info transactions
// whose elements it holds as committed.
func (c *checker) scanList(key string, list []int64) scan {
	s := scan{dupAt: -1}
	seen := make(map[int64]bool, len(list))
	failed := map[int32]bool{}
	for i, v := range list {
		if seen[v] && s.dupAt < 0 {
			s.dupAt = i
		}
		seen[v] = true
		w, ok := c.writers[elem{key, v}]
		switch {
		case !ok:
			s.garbage = append(s.garbage, i)
		case c.txns[w.t].status == history.Fail:
			if !failed[w.t] {
				failed[w.t] = true
				s.aborted = append(s.aborted, i)
			}
		case c.txns[w.t].status == history.Info:
			c.txns[w.t].committed = true
		}
	}
	return s
}

// reportRead turns the scan of a list of which r's list is a prefix (or
// r's own) into r's anomalies.
func (c *checker) reportRead(key string, r read, s scan) {
	t, l := c.txns[r.t].id, r.list
	n := len(l)
	if s.dupAt >= 0 && s.dupAt < n {
		c.bad[key] = true
		c.add(Anomaly{Type: DuplicateElements, Txns: []int64{t}, Key: key,
			Explanation: fmt.Sprintf("op %d read %s as %s, in which %d appears more than once", t, key, list(l), l[s.dupAt])})
	}
	var garbage []int64
	for _, i := range s.garbage {
		if i < n {
			garbage = append(garbage, l[i])
		}
	}
	if len(garbage) > 0 {
		c.add(Anomaly{Type: GarbageRead, Txns: []int64{t}, Key: key,
			Explanation: fmt.Sprintf("op %d read %s as %s, which contains %s that no transaction appended", t, key, list(l), values(garbage))})
	}
	for _, i := range s.aborted {
		if i >= n {
			continue
		}
		w := c.txns[c.writers[elem{key, l[i]}].t].id
		c.add(Anomaly{Type: G1a, Txns: []int64{t, w}, Key: key,
			Explanation: fmt.Sprintf("op %d read %s as %s, including %d, appended by op %d, which failed (aborted read)", t, key, list(l), l[i], w)})
	}
	if n == 0 {
		return
	}
	last := l[n-1]
	w, ok := c.writers[elem{key, last}]
	if ok && w.t != r.t && !w.final && c.txns[w.t].status != history.Fail {
		wt := c.txns[w.t]
		c.add(Anomaly{Type: G1b, Txns: []int64{t, wt.id}, Key: key,
			Explanation: fmt.Sprintf("op %d read %s as %s, ending at %d, but op %d appended %d to %s after %d in the same transaction (intermediate read)", t, key, list(l), last, wt.id, nextAppend(wt.ops, key, last), key, last)})
	}
}

// nextAppend is the element a transaction appended to key right after v.
func nextAppend(ops history.Txn, key string, v int64) int64 {
	found := false
	for _, m := range ops {
		if m.F != history.MicroAppend || m.Key != key {
			continue
		}
		if found {
			return m.Value
		}
		found = m.Value == v
	}
	return 0
}

// checkInternal compares each read with what the transaction itself
// already knows of the key: an earlier read plus its own appends since, or
// at least its own appends as the list's tail.
func (c *checker) checkInternal(t *txn) {
	type state struct {
		known    []int64
		read     bool
		appended []int64
	}
	st := map[string]*state{}
	for _, m := range t.ops {
		s := st[m.Key]
		if s == nil {
			s = &state{}
			st[m.Key] = s
		}
		if m.F == history.MicroAppend {
			s.appended = append(s.appended, m.Value)
			continue
		}
		var want string
		switch {
		case s.read:
			if exp := append(slices.Clone(s.known), s.appended...); !slices.Equal(m.Read, exp) {
				want = "exactly " + list(exp)
			}
		case len(s.appended) > 0:
			if n, k := len(m.Read), len(s.appended); n < k || !slices.Equal(m.Read[n-k:], s.appended) {
				want = "a list ending in its own appends " + list(s.appended)
			}
		}
		if want != "" {
			c.add(Anomaly{Type: Internal, Txns: []int64{t.id}, Key: m.Key,
				Explanation: fmt.Sprintf("op %d read %s as %s, but its own earlier micro-ops imply %s", t.id, m.Key, list(m.Read), want)})
			return
		}
		s.known, s.read, s.appended = m.Read, true, nil
	}
}

// checkKeys checks every read of each key and infers the key's version
// order. Lists only grow, so every read must be a prefix of the longest
// one, which is then the longest known prefix of the version order. That
// also makes the element checks cheap: the longest read is scanned once,
// and a read that is a prefix of it has exactly the anomalies of that
// prefix; only reads that are not get scanned on their own. Keys whose
// reads disagree, or repeat an element, get no order: edges from them
// would rest on a guess.
func (c *checker) checkKeys() (map[string][]int64, error) {
	orders := map[string][]int64{}
	for _, k := range c.keys {
		rs := c.reads[k]
		var longest read
		for _, r := range rs {
			if len(r.list) > len(longest.list) {
				longest = r
			}
		}
		ls := c.scanList(k, longest.list)
		var conflict *read
		n := 0
		for i, r := range rs {
			if err := c.poll(); err != nil {
				return nil, err
			}
			if slices.Equal(r.list, longest.list[:len(r.list)]) {
				c.reportRead(k, r, ls)
				continue
			}
			c.reportRead(k, r, c.scanList(k, r.list))
			if conflict == nil {
				conflict = &rs[i]
			}
			n++
		}
		if conflict != nil {
			a, b := c.txns[longest.t].id, c.txns[conflict.t].id
			more := ""
			if n > 1 {
				more = fmt.Sprintf(" (%d reads of %s disagree with the longest)", n, k)
			}
			c.add(Anomaly{Type: IncompatibleOrder, Txns: []int64{b, a}, Key: k,
				Explanation: fmt.Sprintf("op %d read %s as %s and op %d read it as %s: neither is a prefix of the other, so no single append order explains both%s", b, k, list(conflict.list), a, list(longest.list), more)})
			c.bad[k] = true
		}
		if !c.bad[k] {
			orders[k] = longest.list
		}
	}
	return orders, nil
}

// list renders a read for explanations, eliding the middle of long ones.
func list(l []int64) string {
	if len(l) > 6 {
		return fmt.Sprintf("[%d %d ... %d %d] (%d elements)", l[0], l[1], l[len(l)-2], l[len(l)-1], len(l))
	}
	return values(l)
}

func values(l []int64) string {
	s := make([]string, len(l))
	for i, v := range l {
		s[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (c *checker) add(a Anomaly) { c.anomalies = append(c.anomalies, a) }

func sortAnomalies(as []Anomaly) {
	first := func(a Anomaly) int64 {
		if len(a.Cycle) > 0 {
			return a.Cycle[0].Txn
		}
		if len(a.Txns) > 0 {
			return a.Txns[0]
		}
		return -1
	}
	sort.SliceStable(as, func(i, j int) bool {
		a, b := as[i], as[j]
		if typeRank[a.Type] != typeRank[b.Type] {
			return typeRank[a.Type] < typeRank[b.Type]
		}
		if first(a) != first(b) {
			return first(a) < first(b)
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Explanation < b.Explanation
	})
}
