package listappend

import (
	"slices"
	"sort"
)

// maxStarts bounds the breadth-first searches for a shortest cycle in one
// strongly connected component: the shortest cycle through each of its
// first maxStarts transactions (by id). Any cycle is a valid witness; this
// keeps the witness short without a search quadratic in a huge component.
const maxStarts = 64

// scratch is per-node working memory reused by every search. Membership
// and visits are marked with stamps so nothing is cleared between searches.
type scratch struct {
	index, low         []int32
	onStack            []bool
	in, seen           []uint32
	inStamp, seenStamp uint32
	dist, parent       []int32
}

func newScratch(n int) *scratch {
	return &scratch{
		index: make([]int32, n), low: make([]int32, n), onStack: make([]bool, n),
		in: make([]uint32, n), seen: make([]uint32, n),
		dist: make([]int32, n), parent: make([]int32, n),
	}
}

// mark makes nodes the current set and returns its stamp.
func (s *scratch) mark(nodes []int32) uint32 {
	s.inStamp++
	for _, v := range nodes {
		s.in[v] = s.inStamp
	}
	return s.inStamp
}

// findCycles reports one anomaly per non-trivial strongly connected
// component of the dependency graph, the weakest class of cycle it holds.
func (c *checker) findCycles() error {
	c.scr = newScratch(len(c.nodes))
	all := make([]int32, len(c.nodes))
	for i := range all {
		all[i] = int32(i)
	}
	comps, err := c.sccs(all, bitWW|bitWR|bitRW)
	if err != nil {
		return err
	}
	for _, comp := range comps {
		a, err := c.classify(comp)
		if err != nil {
			return err
		}
		c.add(a)
	}
	return nil
}

// classify finds, in one component, a cycle of the first class that
// exists, in Adya's order: ww only (G0), then ww and wr (G1c), then exactly
// one rw (G-single), else several (G2-item). Checking in that order is what
// makes the classes exact: the G2-item cycle is reported only once no
// cycle with fewer rw edges exists.
func (c *checker) classify(comp []int32) (Anomaly, error) {
	for _, cl := range []struct {
		typ  string
		mask uint8
	}{{G0, bitWW}, {G1c, bitWW | bitWR}} {
		subs, err := c.sccs(comp, cl.mask)
		if err != nil {
			return Anomaly{}, err
		}
		if len(subs) > 0 {
			cyc, err := c.shortestCycle(subs[0], cl.mask)
			if err != nil {
				return Anomaly{}, err
			}
			return c.cycleAnomaly(cl.typ, cyc, c.labels(cyc, cl.mask)), nil
		}
	}
	cyc, err := c.singleRW(comp)
	if err != nil {
		return Anomaly{}, err
	}
	if cyc != nil {
		bits := c.labels(cyc, bitWW|bitWR)
		bits[len(bits)-1] = bitRW // singleRW puts the rw edge last
		return c.cycleAnomaly(GSingle, cyc, bits), nil
	}
	cyc, err = c.shortestCycle(comp, bitWW|bitWR|bitRW)
	if err != nil {
		return Anomaly{}, err
	}
	return c.cycleAnomaly(G2Item, cyc, c.labels(cyc, bitWW|bitWR|bitRW)), nil
}

// labels picks each hop's edge type among those allowed, preferring ww,
// then wr, then rw: the reading with the fewest anti-dependencies.
func (c *checker) labels(cyc []int32, allowed uint8) []uint8 {
	bits := make([]uint8, len(cyc))
	for i, a := range cyc {
		m := c.edges[[2]int32{a, cyc[(i+1)%len(cyc)]}].mask & allowed
		for _, b := range []uint8{bitWW, bitWR, bitRW} {
			if m&b != 0 {
				bits[i] = b
				break
			}
		}
	}
	return bits
}

// sccs returns the strongly connected components with more than one node
// of the subgraph induced by nodes and the edge types in mask, each sorted,
// ordered by their lowest node. Tarjan's algorithm, iterative so that a
// long chain of transactions cannot exhaust the stack.
func (c *checker) sccs(nodes []int32, mask uint8) ([][]int32, error) {
	s := c.scr
	stamp := s.mark(nodes)
	for _, v := range nodes {
		s.index[v] = -1
		s.onStack[v] = false
	}
	type frame struct {
		v int32
		i int
	}
	var (
		counter int32
		stack   []int32
		frames  []frame
		comps   [][]int32
	)
	visit := func(v int32) {
		s.index[v], s.low[v] = counter, counter
		counter++
		stack = append(stack, v)
		s.onStack[v] = true
		frames = append(frames, frame{v: v})
	}
	for _, root := range nodes {
		if s.index[root] != -1 {
			continue
		}
		visit(root)
		for len(frames) > 0 {
			if err := c.poll(); err != nil {
				return nil, err
			}
			f := &frames[len(frames)-1]
			v := f.v
			if f.i < len(c.adj[v]) {
				a := c.adj[v][f.i]
				f.i++
				switch {
				case a.mask&mask == 0 || s.in[a.to] != stamp:
				case s.index[a.to] == -1:
					visit(a.to)
				case s.onStack[a.to]:
					s.low[v] = min(s.low[v], s.index[a.to])
				}
				continue
			}
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				p := frames[len(frames)-1].v
				s.low[p] = min(s.low[p], s.low[v])
			}
			if s.low[v] != s.index[v] {
				continue
			}
			i := len(stack) - 1
			for stack[i] != v {
				i--
			}
			comp := slices.Clone(stack[i:])
			stack = stack[:i]
			for _, w := range comp {
				s.onStack[w] = false
			}
			if len(comp) > 1 {
				slices.Sort(comp)
				comps = append(comps, comp)
			}
		}
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i][0] < comps[j][0] })
	return comps, nil
}

// bfs explores from start over edges in mask within the set marked with
// stamp, filling dist and parent for every node it reaches (seen). If
// stopAt is reached by an edge, it returns the node the edge leaves from,
// the end of a shortest start ~> stopAt path; otherwise -1.
func (c *checker) bfs(start int32, mask uint8, stamp uint32, stopAt int32) (int32, error) {
	s := c.scr
	s.seenStamp++
	s.seen[start], s.dist[start], s.parent[start] = s.seenStamp, 0, -1
	queue := []int32{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, a := range c.adj[u] {
			if err := c.poll(); err != nil {
				return -1, err
			}
			if a.mask&mask == 0 || s.in[a.to] != stamp {
				continue
			}
			if a.to == stopAt {
				return u, nil
			}
			if s.seen[a.to] == s.seenStamp {
				continue
			}
			s.seen[a.to], s.dist[a.to], s.parent[a.to] = s.seenStamp, s.dist[u]+1, u
			queue = append(queue, a.to)
		}
	}
	return -1, nil
}

// path is start ... end, from the parents the last bfs left.
func (c *checker) path(end int32) []int32 {
	var p []int32
	for v := end; v != -1; v = c.scr.parent[v] {
		p = append(p, v)
	}
	slices.Reverse(p)
	return p
}

// shortestCycle is the shortest cycle over edges in mask through any of
// the first maxStarts nodes of comp, which must be strongly connected
// under mask. Breadth-first search from a node finds the shortest cycle
// through it: the first edge back to the start closes it.
func (c *checker) shortestCycle(comp []int32, mask uint8) ([]int32, error) {
	stamp := c.scr.mark(comp)
	var best []int32
	for i, start := range comp {
		if i == maxStarts || len(best) == 2 {
			break
		}
		end, err := c.bfs(start, mask, stamp, start)
		if err != nil {
			return nil, err
		}
		if end >= 0 && (best == nil || int(c.scr.dist[end])+1 < len(best)) {
			best = c.path(end)
		}
	}
	return best, nil
}

// singleRW finds the shortest cycle in comp made of one rw edge a -> b and
// a path of ww and wr edges back from b to a, returned as b ... a (the rw
// edge closes it), or nil if there is none. Exact: every rw edge of the
// component is tried, with one search per distinct target b.
func (c *checker) singleRW(comp []int32) ([]int32, error) {
	stamp := c.scr.mark(comp)
	into := map[int32][]int32{} // b -> sources a of rw edges a -> b
	for _, a := range comp {
		for _, e := range c.adj[a] {
			if e.mask&bitRW != 0 && c.scr.in[e.to] == stamp {
				into[e.to] = append(into[e.to], a)
			}
		}
	}
	targets := make([]int32, 0, len(into))
	for b := range into {
		targets = append(targets, b)
	}
	slices.Sort(targets)
	var best []int32
	for _, b := range targets {
		if _, err := c.bfs(b, bitWW|bitWR, stamp, -1); err != nil {
			return nil, err
		}
		for _, a := range into[b] { // ascending: comp is sorted
			if c.scr.seen[a] != c.scr.seenStamp {
				continue
			}
			if best == nil || int(c.scr.dist[a])+1 < len(best) {
				best = c.path(a)
			}
		}
		if len(best) == 2 {
			break
		}
	}
	return best, nil
}
