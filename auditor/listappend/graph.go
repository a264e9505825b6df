package listappend

import (
	"fmt"
	"slices"
	"strings"

	"github.com/detvm/detvm/workload/history"
)

// Edge type bits, so one pair of transactions can carry several.
const (
	bitWW uint8 = 1 << iota
	bitWR
	bitRW
)

var bitName = map[uint8]string{bitWW: WW, bitWR: WR, bitRW: RW}

// why is the evidence for one edge type between two transactions: the
// first found, in key order then transaction order, so it is deterministic.
type why struct {
	key  string
	from int64 // ww: the earlier append; wr: the element read; rw: the last element read
	// fromLen is the length of the read for rw (0: an empty read) and wr.
	fromLen int
	to      int64 // ww, rw: the later append
	// beyond: the later append was never read; it follows the whole known
	// order (ww) or the read saw all of it (rw).
	beyond bool
}

type edge struct {
	mask uint8
	why  [3]why // indexed by bit position
}

type arc struct {
	to   int32
	mask uint8
}

func bitIndex(b uint8) int {
	switch b {
	case bitWW:
		return 0
	case bitWR:
		return 1
	}
	return 2
}

// writerOf is the transaction that appended v to key, if any did.
func (c *checker) writerOf(key string, v int64) int32 {
	if w, ok := c.writers[elem{key, v}]; ok {
		return w.t
	}
	return -1
}

// addEdge records from -> to (indices into txns) unless either is not a
// node (failed, unseen info, or no writer at all: -1) or they are the same.
func (c *checker) addEdge(from, to int32, bit uint8, w why) {
	if from < 0 || to < 0 {
		return
	}
	a, b := c.txns[from].node, c.txns[to].node
	if a < 0 || b < 0 || a == b {
		return
	}
	e := c.edges[[2]int32{a, b}]
	if e == nil {
		e = &edge{}
		c.edges[[2]int32{a, b}] = e
	}
	if e.mask&bit == 0 {
		e.mask |= bit
		e.why[bitIndex(bit)] = w
	}
}

// buildGraph makes committed transactions the nodes and adds, per key with
// a trusted version order V (and the committed appends U that no read saw,
// which must all come after V):
//
//	ww  writer(V[i]) -> writer(V[i+1]); writer(V[last]) -> each of U
//	wr  writer(last element a read saw) -> reader
//	rw  reader of a strict prefix of V -> writer of the next element;
//	    reader of all of V -> each of U
//
// Edges to U are the part that goes beyond Adya's next-version rule: they
// are sound (an append nobody saw is after everything anybody saw) and
// they find write skew between transactions whose appends were never read.
func (c *checker) buildGraph(orders map[string][]int64) error {
	for i := range c.txns {
		if c.txns[i].committed {
			c.txns[i].node = int32(len(c.nodes))
			c.nodes = append(c.nodes, int32(i))
		}
	}
	c.edges = map[[2]int32]*edge{}
	byKey := map[string][]int32{} // committed appenders' elements per key, in txn order
	for i, t := range c.txns {
		if !t.committed {
			continue
		}
		for _, m := range t.ops {
			if m.F == history.MicroAppend {
				byKey[m.Key] = append(byKey[m.Key], int32(i))
			}
		}
	}
	for _, k := range c.keys {
		order, ok := orders[k]
		if !ok {
			continue
		}
		in := make(map[int64]bool, len(order))
		for i, v := range order {
			in[v] = true
			if i > 0 {
				c.addEdge(c.writerOf(k, order[i-1]), c.writerOf(k, v), bitWW, why{key: k, from: order[i-1], to: v})
			}
		}
		// The committed appends nobody read, in transaction order.
		type beyond struct {
			t int32
			v int64
		}
		var unseen []beyond
		for _, t := range uniq(byKey[k]) {
			for _, m := range c.txns[t].ops {
				if m.F == history.MicroAppend && m.Key == k && !in[m.Value] {
					unseen = append(unseen, beyond{t, m.Value})
				}
			}
		}
		if n := len(order); n > 0 {
			last := c.writerOf(k, order[n-1])
			for _, u := range unseen {
				c.addEdge(last, u.t, bitWW, why{key: k, from: order[n-1], to: u.v, beyond: true})
			}
		}
		for _, r := range c.reads[k] {
			if err := c.poll(); err != nil {
				return err
			}
			n := len(r.list)
			var lastRead int64
			if n > 0 {
				lastRead = r.list[n-1]
				c.addEdge(c.writerOf(k, lastRead), r.t, bitWR, why{key: k, from: lastRead, fromLen: n})
			}
			if n < len(order) {
				next := order[n]
				c.addEdge(r.t, c.writerOf(k, next), bitRW, why{key: k, from: lastRead, fromLen: n, to: next})
				continue
			}
			for _, u := range unseen {
				c.addEdge(r.t, u.t, bitRW, why{key: k, from: lastRead, fromLen: n, to: u.v, beyond: true})
			}
		}
	}
	c.adj = make([][]arc, len(c.nodes))
	for p, e := range c.edges {
		c.adj[p[0]] = append(c.adj[p[0]], arc{to: p[1], mask: e.mask})
	}
	for i := range c.adj {
		slices.SortFunc(c.adj[i], func(a, b arc) int { return int(a.to) - int(b.to) })
	}
	return nil
}

// uniq drops adjacent repeats (a transaction appending twice to a key).
func uniq(ts []int32) []int32 {
	return slices.Compact(slices.Clone(ts))
}

// describe says in words why edge a->b of the given type holds.
func (c *checker) describe(a, b int32, bit uint8) string {
	w := c.edges[[2]int32{a, b}].why[bitIndex(bit)]
	ta, tb := c.txns[c.nodes[a]].id, c.txns[c.nodes[b]].id
	switch bit {
	case bitWW:
		if w.beyond {
			return fmt.Sprintf("op %d < op %d (ww): op %d appended %d to %s, which no read saw, so it follows op %d's %d, the last element read", ta, tb, tb, w.to, w.key, ta, w.from)
		}
		return fmt.Sprintf("op %d < op %d (ww): op %d appended %d to %s right after op %d's %d", ta, tb, tb, w.to, w.key, ta, w.from)
	case bitWR:
		return fmt.Sprintf("op %d < op %d (wr): op %d read %s ending at %d, which op %d appended", ta, tb, tb, w.key, w.from, ta)
	}
	seen := "an empty list"
	if w.fromLen > 0 {
		seen = fmt.Sprintf("a list ending at %d", w.from)
	}
	if w.beyond {
		return fmt.Sprintf("op %d < op %d (rw): op %d read %s as %s, all that any read saw, and missed op %d's append of %d", ta, tb, ta, w.key, seen, tb, w.to)
	}
	return fmt.Sprintf("op %d < op %d (rw): op %d read %s as %s and missed op %d's append of %d, the next element", ta, tb, ta, w.key, seen, tb, w.to)
}

// cycleAnomaly turns a cycle of nodes, with the edge type chosen for each
// hop, into an Anomaly that starts at the lowest transaction id.
func (c *checker) cycleAnomaly(typ string, nodes []int32, bits []uint8) Anomaly {
	start := 0
	for i := range nodes {
		if c.txns[c.nodes[nodes[i]]].id < c.txns[c.nodes[nodes[start]]].id {
			start = i
		}
	}
	n := len(nodes)
	a := Anomaly{Type: typ}
	lines := []string{intro[typ]}
	for j := range n {
		i := (start + j) % n
		from, to := nodes[i], nodes[(i+1)%n]
		w := c.edges[[2]int32{from, to}].why[bitIndex(bits[i])]
		v := w.to
		if bits[i] == bitWR {
			v = w.from
		}
		a.Cycle = append(a.Cycle, Step{Txn: c.txns[c.nodes[from]].id, Edge: bitName[bits[i]], Key: w.key, Value: v})
		lines = append(lines, "  "+c.describe(from, to, bits[i]))
	}
	a.Explanation = strings.Join(lines, "\n")
	return a
}

var intro = map[string]string{
	G0:      "a cycle of ww edges only (G0, write cycle): the transactions' appends interleave:",
	G1c:     "a cycle of ww and wr edges (G1c, circular information flow):",
	GSingle: "a cycle with exactly one rw edge (G-single, read skew):",
	G2Item:  "a cycle with several rw edges and no cycle with fewer (G2-item, e.g. write skew):",
}
