package scheduler

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// op is one step of a generated run, recorded so the same run can be replayed
// against several switches.
type op struct {
	kind    string // "send", "deliver" or "rules"
	epoch   uint64
	src     int
	packets [][]byte
	rules   []Rule
}

type scenario struct {
	addrs []netip.Addr
	ops   []op
}

// genScenario builds a random run from seed: packets to real nodes, to the
// sender itself, to nobody, malformed ones; fault tables replaced mid-run;
// deliveries that sometimes skip epochs so frames pile up.
func genScenario(t *testing.T, seed uint64) scenario {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 2 + rng.IntN(5)
	var sc scenario
	for i := range n {
		sc.addrs = append(sc.addrs, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
	}
	randRules := func() []Rule {
		var rs []Rule
		for range rng.IntN(6) {
			r := Rule{Src: rng.IntN(n+1) - 1, Dst: rng.IntN(n+1) - 1}
			if rng.IntN(2) == 0 {
				r.FromEpoch = rng.Uint64N(40)
			}
			if rng.IntN(2) == 0 {
				r.UntilEpoch = r.FromEpoch + 1 + rng.Uint64N(20)
			}
			switch rng.IntN(3) {
			case 0:
				r.Drop = true
			case 1:
				r.DelayEpochs = 1 + rng.Uint64N(6)
			}
			rs = append(rs, r)
		}
		return rs
	}
	sc.ops = append(sc.ops, op{kind: "rules", rules: randRules()})
	const epochs = 60
	for e := uint64(0); e < epochs; e++ {
		if rng.IntN(10) == 0 {
			sc.ops = append(sc.ops, op{kind: "rules", rules: randRules()})
		}
		if rng.IntN(10) < 7 {
			sc.ops = append(sc.ops, op{kind: "deliver", epoch: e})
		}
		for src := range n {
			var pkts [][]byte
			for range rng.IntN(4) {
				pkts = append(pkts, randPacket(t, rng, sc.addrs, src))
			}
			if len(pkts) > 0 {
				sc.ops = append(sc.ops, op{kind: "send", epoch: e, src: src, packets: pkts})
			}
		}
	}
	// Drain whatever is still delayed.
	sc.ops = append(sc.ops, op{kind: "deliver", epoch: 1 << 40})
	return sc
}

func randPacket(t *testing.T, rng *rand.Rand, addrs []netip.Addr, src int) []byte {
	t.Helper()
	switch k := rng.IntN(20); {
	case k == 0: // too short
		p := make([]byte, rng.IntN(ipv4HeaderLen))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	case k == 1: // wrong IP version
		p, err := testPacket(addrs[src], addrs[(src+1)%len(addrs)], -1, "v6")
		if err != nil {
			t.Fatal(err)
		}
		p[0] = 0x60
		return p
	case k == 2: // nobody's address
		p, err := testPacket(addrs[src], netip.MustParseAddr("192.0.2.1"), -1, "far")
		if err != nil {
			t.Fatal(err)
		}
		return p
	default: // any node, the sender included
		id := fmt.Sprintf("p%d", rng.Uint32())
		p, err := testPacket(addrs[src], addrs[rng.IntN(len(addrs))], len(id)+21+rng.IntN(100), id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// run replays sc. If shuffle is non-nil, the Send calls of each epoch are
// made in a random order of sources, which must not matter.
func run(sc scenario, shuffle *rand.Rand) ([][]Frame, Stats) {
	s := NewSwitch(sc.addrs)
	var out [][]Frame
	ops := sc.ops
	if shuffle != nil {
		ops = shuffleSends(ops, shuffle)
	}
	for _, o := range ops {
		switch o.kind {
		case "rules":
			s.SetRules(o.rules)
		case "send":
			s.Send(o.epoch, o.src, o.packets)
		case "deliver":
			out = append(out, s.Deliver(o.epoch))
		}
	}
	return out, s.Stats()
}

// shuffleSends permutes each maximal run of consecutive send ops of one
// epoch. Those are from distinct sources; a source's own sends must keep
// their order, since that order is what Seq records.
func shuffleSends(ops []op, rng *rand.Rand) []op {
	ops = slices.Clone(ops)
	for i := 0; i < len(ops); {
		j := i
		for j < len(ops) && ops[j].kind == "send" && ops[j].epoch == ops[i].epoch {
			j++
		}
		if j == i {
			i++
			continue
		}
		run := ops[i:j]
		rng.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	return ops
}

// model is a deliberately naive reference: a flat list, re-sorted on every
// delivery, with rules matched by an independent loop.
func model(sc scenario) [][]Frame {
	byAddr := func(a netip.Addr) int {
		for i, x := range sc.addrs {
			if x == a {
				return i
			}
		}
		return -1
	}
	seq := make([]uint64, len(sc.addrs))
	var rules []Rule
	var queue []Frame
	var out [][]Frame
	for _, o := range sc.ops {
		switch o.kind {
		case "rules":
			rules = o.rules
		case "send":
			for _, p := range o.packets {
				f := Frame{Src: o.src, Seq: seq[o.src], SentEpoch: o.epoch, DeliverEpoch: o.epoch + 1}
				seq[o.src]++
				if len(p) < 20 || p[0]>>4 != 4 {
					continue
				}
				f.Dst = byAddr(netip.AddrFrom4([4]byte{p[16], p[17], p[18], p[19]}))
				if f.Dst < 0 || f.Dst == o.src {
					continue
				}
				drop := false
				for _, r := range rules {
					if (r.Src == -1 || r.Src == f.Src) && (r.Dst == -1 || r.Dst == f.Dst) &&
						o.epoch >= r.FromEpoch && (r.UntilEpoch == 0 || o.epoch < r.UntilEpoch) {
						drop = r.Drop
						f.DeliverEpoch += r.DelayEpochs
						break
					}
				}
				if !drop {
					f.Data = slices.Clone(p)
					queue = append(queue, f)
				}
			}
		case "deliver":
			slices.SortFunc(queue, func(a, b Frame) int {
				if a.DeliverEpoch != b.DeliverEpoch {
					return cmpU(a.DeliverEpoch, b.DeliverEpoch)
				}
				if a.Src != b.Src {
					return a.Src - b.Src
				}
				return cmpU(a.Seq, b.Seq)
			})
			var due []Frame
			for len(queue) > 0 && queue[0].DeliverEpoch <= o.epoch {
				due = append(due, queue[0])
				queue = queue[1:]
			}
			out = append(out, due)
		}
	}
	return out
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestDeterminism(t *testing.T) {
	// Totals over all seeds, to make sure the generator reaches every path.
	var total Stats
	var delayed int
	for seed := uint64(1); seed <= 200; seed++ {
		sc := genScenario(t, seed)
		first, stats := run(sc, nil)
		second, stats2 := run(sc, nil)
		if !reflect.DeepEqual(first, second) || stats != stats2 {
			t.Fatalf("seed %d: two runs of the same input differ", seed)
		}
		shuffled, stats3 := run(sc, rand.New(rand.NewPCG(seed, 7)))
		if !reflect.DeepEqual(first, shuffled) || stats != stats3 {
			t.Fatalf("seed %d: the order of Send calls across sources changed the output", seed)
		}
		if want := model(sc); !reflect.DeepEqual(first, want) {
			t.Fatalf("seed %d: switch disagrees with the reference model", seed)
		}

		var delivered uint64
		for i, batch := range first {
			for j := range batch {
				f := &batch[j]
				if f.DeliverEpoch <= f.SentEpoch {
					t.Fatalf("seed %d batch %d: frame delivered in its own epoch: %+v", seed, i, f)
				}
				if j > 0 && !frameLess(&batch[j-1], f) {
					t.Fatalf("seed %d batch %d: frames out of order at %d", seed, i, j)
				}
				if f.DeliverEpoch > f.SentEpoch+1 {
					delayed++
				}
			}
			delivered += uint64(len(batch))
		}
		if stats.Delivered != delivered {
			t.Fatalf("seed %d: Stats.Delivered=%d, counted %d", seed, stats.Delivered, delivered)
		}
		// Everything was drained, so each packet ended in exactly one bucket.
		if got := stats.Delivered + stats.DroppedNoRoute + stats.DroppedMalformed + stats.DroppedByRule; got != stats.Sent {
			t.Fatalf("seed %d: %+v does not account for every packet sent", seed, stats)
		}
		total.Sent += stats.Sent
		total.Delivered += stats.Delivered
		total.DroppedNoRoute += stats.DroppedNoRoute
		total.DroppedMalformed += stats.DroppedMalformed
		total.DroppedByRule += stats.DroppedByRule
	}
	t.Logf("totals %+v, %d delayed frames", total, delayed)
	if total.DroppedNoRoute == 0 || total.DroppedMalformed == 0 || total.DroppedByRule == 0 || delayed == 0 {
		t.Fatalf("generator no longer covers every path: %+v, %d delayed", total, delayed)
	}
}
