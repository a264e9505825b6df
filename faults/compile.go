package faults

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// Segment is a stretch of a run drawn from one seed: the run's seed from
// epoch 0, then the seed of each branch from the epoch it branches at.
type Segment struct {
	Seed      uint64
	FromEpoch uint64
}

// Labels of the random streams; see the package documentation.
const (
	windowLabel = "detvm-faults-v1"
	listLabel   = "detvm-faults-v1/list"
)

// streamKey is the FNV-1a 64 hash of label followed by i as 8 little-endian
// bytes: the second PCG seed of stream i.
func streamKey(label string, i uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(label))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], i)
	h.Write(b[:])
	return h.Sum64()
}

// gen draws from a PCG stream. Only PCG's Uint64 is used; the reductions to
// ranges are written out here so that no library change can alter a
// schedule.
type gen struct{ r *rand.Rand }

func newGen(seed, key uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, key))} }

// below returns a uniform number in [0, n), n > 0 (Lemire's method).
func (g *gen) below(n uint64) uint64 {
	hi, lo := bits.Mul64(g.r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(g.r.Uint64(), n)
		}
	}
	return hi
}

// between returns a uniform number in [lo, hi].
func (g *gen) between(lo, hi int64) int64 { return lo + int64(g.below(uint64(hi-lo)+1)) }

// chance is true with probability num/den.
func (g *gen) chance(num, den uint64) bool { return g.below(den) < num }

// sign is +1 or -1, evenly.
func (g *gen) sign() int64 {
	if g.chance(1, 2) {
		return -1
	}
	return 1
}

// shuffle is Fisher-Yates.
func (g *gen) shuffle(xs []int) {
	for i := len(xs) - 1; i > 0; i-- {
		j := g.below(uint64(i) + 1)
		xs[i], xs[j] = xs[j], xs[i]
	}
}

// compiler holds what Compile knows of the run.
type compiler struct {
	errs
	t        Topology
	field    string
	epoch    time.Duration
	duration time.Duration
	segs     []Segment
	endAll   uint64 // the run's last epoch + 1
	cands    []int  // nodes random choices may target
}

// Compile makes s concrete for a run: the topology t, epochs of length
// epoch, a run of length duration (epochs 0 to duration/epoch) and the seeds
// of segs. segs must start with the run's seed at epoch 0, followed by the
// branches in increasing FromEpoch. Every random choice is drawn from the
// segment covering the epoch it concerns, as the package documentation
// describes, so that a branch changes nothing before it.
//
// Problems with the spec in the light of the run (a node that does not
// exist, a fault after the end) are *Error naming the line and field;
// invalid arguments are plain errors.
func (s *Spec) Compile(t Topology, epoch, duration time.Duration, segs []Segment) (Schedule, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	if epoch <= 0 || duration <= 0 {
		return nil, fmt.Errorf("faults: compile: epoch (%v) and duration (%v) must be positive", epoch, duration)
	}
	if len(segs) == 0 || segs[0].FromEpoch != 0 {
		return nil, errors.New("faults: compile: the first segment must start at epoch 0")
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].FromEpoch <= segs[i-1].FromEpoch {
			return nil, fmt.Errorf("faults: compile: segment %d starts at epoch %d, not after %d", i, segs[i].FromEpoch, segs[i-1].FromEpoch)
		}
	}
	c := &compiler{errs: newErrs(s.file), t: t, field: s.field, epoch: epoch, duration: duration, segs: segs,
		endAll: uint64(duration/epoch) + 1, cands: t.candidates()}
	var out Schedule
	switch {
	case s.policy != nil:
		out = c.policy(s.policy)
	default:
		for _, h := range s.list {
			if f, ok := c.hand(h); ok {
				out = append(out, f)
			}
		}
	}
	if err := c.first(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Fault) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := range out {
		out[i].ID = i
	}
	return out, nil
}

// seedAt is the seed of the segment covering epoch e.
func (c *compiler) seedAt(e uint64) uint64 {
	seed := c.segs[0].Seed
	for _, s := range c.segs {
		if s.FromEpoch <= e {
			seed = s.Seed
		}
	}
	return seed
}

func (c *compiler) nameList() string { return strings.Join(c.t.Names, ", ") }

// resolve turns names into sorted node indices.
func (c *compiler) resolve(refs []nameRef) ([]int, bool) {
	ok := true
	var out []int
	for _, r := range refs {
		i := slices.Index(c.t.Names, r.name)
		if i < 0 {
			c.fail(r.line, r.field, fmt.Sprintf("%q is not a node", r.name), didYouMean("use one of "+c.nameList(), r.name, c.t.Names))
			ok = false
			continue
		}
		out = append(out, i)
	}
	slices.Sort(out)
	return out, ok
}

// hand compiles one hand-written fault.
func (c *compiler) hand(h *handFault) (Fault, bool) {
	f := Fault{Kind: h.kind}
	if h.at >= c.duration {
		problem := fmt.Sprintf("%v is past the end of the run (duration %v)", h.at, c.duration)
		if h.at == c.duration {
			problem = fmt.Sprintf("%v is the end of the run: the fault would never act", h.at)
		}
		c.fail(h.atLine, yamlwalk.Join(h.field, "at"), problem, fmt.Sprintf("use a time before %v, or make the run longer", c.duration))
		return f, false
	}
	f.Start = max(FirstEpoch, uint64(h.at/c.epoch))
	f.End = c.endAll
	if h.length > 0 {
		end := h.at + h.length
		if end < h.at { // overflow: until the end
			end = c.duration
		}
		f.End = max(f.Start+1, min(c.endAll, ceilEpochs(end, c.epoch)))
	}
	f.End = max(f.End, f.Start+1)
	g := newGen(c.seedAt(f.Start), streamKey(listLabel, uint64(h.index)))
	ok := true
	switch {
	case h.kind == Partition && h.groups != nil:
		for _, refs := range h.groups {
			group, gok := c.resolve(refs)
			ok = ok && gok
			f.Groups = append(f.Groups, group)
		}
	case h.kind == Partition:
		if problem := c.modeProblem(h.mode); problem != "" {
			c.fail(h.set["mode"], yamlwalk.Join(h.field, "mode"), problem, "add nodes to the scenario or use another mode")
			return f, false
		}
		f.Groups = shape(g, h.mode, c.cands)
	case h.nodes == nil:
		if len(c.cands) == 0 {
			c.fail(h.line, yamlwalk.Join(h.field, "nodes"), "there is no node to pick at random: every guest is the sidecar",
				"name the nodes, like nodes: ["+c.nameList()+"]")
			return f, false
		}
		f.Nodes = []int{c.cands[g.below(uint64(len(c.cands)))]}
	default:
		var nok, tok bool
		f.Nodes, nok = c.resolve(h.nodes)
		f.To, tok = c.resolve(h.to)
		ok = nok && tok
	}
	if h.has("period") && h.period < c.epoch {
		c.fail(h.set["period"], yamlwalk.Join(h.field, "period"), fmt.Sprintf("%v is shorter than an epoch (%v)", h.period, c.epoch),
			fmt.Sprintf("use %v or more", c.epoch))
		ok = false
	}
	apply(&f, &h.params)
	return f, ok
}

// apply copies the settings given in ps into f.
func apply(f *Fault, ps *params) {
	for _, key := range faultKeys {
		if !ps.has(key) {
			continue
		}
		switch key {
		case "oneway":
			f.OneWay = ps.oneway
		case "proc":
			f.Proc = ps.proc
		case "percent":
			f.Percent = ps.percent
		case "delay":
			f.Delay = ps.delay
		case "jitter":
			f.Jitter = ps.jitter
		case "rate":
			f.Rate = ps.rate
		case "ratio":
			f.Ratio = ps.ratio
		case "offset":
			f.Offset = ps.offset
		case "period":
			f.Period = ps.period
		case "ppm":
			f.PPM = ps.ppm
		}
	}
}

// modeProblem says why mode cannot be drawn among the random candidates,
// or "".
func (c *compiler) modeProblem(mode string) string {
	need := 2
	switch mode {
	case ModeBridge:
		need = 3
	case ModeMajoritiesRing:
		need = 4
	}
	if len(c.cands) < need {
		return fmt.Sprintf("%s needs at least %d nodes besides the sidecar; the run has %d", mode, need, len(c.cands))
	}
	return ""
}

// shape draws the groups of a partition of mode among nodes (sorted
// indices, enough of them for the mode). Each group is sorted.
//
//   - isolate: one node against the others: [[x] rest].
//   - halves: a random split into two halves (the first has the smaller
//     half when the count is odd).
//   - majority: a random minority of 1 to (n-1)/2 nodes against the rest,
//     minority first.
//   - majorities-ring: the nodes in a random ring, each group k+1
//     consecutive nodes of it, one group starting at each node, with k the
//     least number such that 2k+1 nodes are a majority. So two nodes can talk
//     when they are at most k apart on the ring: every node sees a majority
//     (itself and k neighbours on each side), no two see the same one, and
//     no majority can all talk to each other.
//   - bridge: a random node b and two halves of the others, [A+b, B+b]: A
//     and B are cut apart, b talks to both.
func shape(g *gen, mode string, nodes []int) [][]int {
	perm := slices.Clone(nodes)
	g.shuffle(perm)
	n := len(perm)
	sorted := func(xs ...[]int) []int {
		var out []int
		for _, x := range xs {
			out = append(out, x...)
		}
		slices.Sort(out)
		return out
	}
	switch mode {
	case ModeIsolate:
		return [][]int{{perm[0]}, sorted(perm[1:])}
	case ModeHalves:
		return [][]int{sorted(perm[:n/2]), sorted(perm[n/2:])}
	case ModeMajority:
		k := 1 + int(g.below(uint64(max(1, (n-1)/2))))
		return [][]int{sorted(perm[:k]), sorted(perm[k:])}
	case ModeMajoritiesRing:
		k := (n/2 + 1) / 2
		groups := make([][]int, n)
		for i := range n {
			w := make([]int, k+1)
			for j := range w {
				w[j] = perm[(i+j)%n]
			}
			groups[i] = sorted(w)
		}
		return groups
	case ModeBridge:
		b, rest := perm[:1], perm[1:]
		h := len(rest) / 2
		return [][]int{sorted(rest[:h], b), sorted(rest[h:], b)}
	}
	panic("faults: unknown partition mode " + mode)
}
