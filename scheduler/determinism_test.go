package scheduler

import (
	"encoding/json"
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
	kind    string // "send", "deliver", "rules" or "seed"
	epoch   uint64
	src     int
	packets [][]byte
	rules   []Rule
	seed    uint64
}

type scenario struct {
	addrs []netip.Addr
	ops   []op
}

// genScenario builds a random run from seed: packets to real nodes, to the
// sender itself, to nobody, malformed ones; fault tables of every kind of
// fault, overlapping, replaced mid-run; seeds changed mid-run; deliveries
// that sometimes skip epochs so frames pile up.
func genScenario(t *testing.T, seed uint64) scenario {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 2 + rng.IntN(5)
	var sc scenario
	for i := range n {
		sc.addrs = append(sc.addrs, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
	}
	ppm := func() uint32 {
		return []uint32{0, 0, 1, 100_000, 500_000, PPM}[rng.IntN(6)]
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
			r.Drop = rng.IntN(8) == 0
			if rng.IntN(3) == 0 {
				r.DelayEpochs = 1 + rng.Uint64N(6)
			}
			if rng.IntN(3) == 0 {
				r.JitterEpochs = 1 + rng.Uint64N(3)
			}
			r.LossPPM, r.DuplicatePPM, r.CorruptPPM = ppm(), ppm(), ppm()
			if r.ReorderPPM = ppm(); r.ReorderPPM != 0 {
				r.ReorderEpochs = 1 + rng.Uint64N(3)
			}
			if rng.IntN(3) == 0 {
				r.RateBytesPerEpoch = []uint64{1, 50, 200, 1000}[rng.IntN(4)]
			}
			rs = append(rs, r)
		}
		return rs
	}
	sc.ops = append(sc.ops, op{kind: "seed", seed: rng.Uint64()}, op{kind: "rules", rules: randRules()})
	const epochs = 60
	for e := uint64(0); e < epochs; e++ {
		if rng.IntN(10) == 0 {
			sc.ops = append(sc.ops, op{kind: "rules", rules: randRules()})
		}
		if rng.IntN(20) == 0 {
			sc.ops = append(sc.ops, op{kind: "seed", seed: rng.Uint64()})
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
	case k == 3: // any IHL, which corruption must respect or survive
		p, err := testPacket(addrs[src], addrs[rng.IntN(len(addrs))], 21+rng.IntN(50), "")
		if err != nil {
			t.Fatal(err)
		}
		p[0] = 0x40 | byte(rng.IntN(16))
		return p[:20+rng.IntN(len(p)-19)] // header only, sometimes
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
// made in a random order of sources, which must not matter. If restoreAt is
// an op index, the switch is replaced there by a new one restored from the
// JSON of its State, which must not matter either.
func run(t *testing.T, sc scenario, shuffle *rand.Rand, restoreAt int) ([][]Frame, Stats) {
	t.Helper()
	s := NewSwitch(sc.addrs)
	var out [][]Frame
	ops := sc.ops
	if shuffle != nil {
		ops = shuffleSends(ops, shuffle)
	}
	for i, o := range ops {
		if i == restoreAt {
			s = jsonRestore(t, s)
		}
		switch o.kind {
		case "rules":
			if err := s.SetRules(o.rules); err != nil {
				t.Fatal(err)
			}
		case "seed":
			s.SetSeed(o.seed)
		case "send":
			s.Send(o.epoch, o.src, o.packets)
		case "deliver":
			out = append(out, s.Deliver(o.epoch))
		}
	}
	return out, s.Stats()
}

// jsonRestore returns a new switch restored from s's State, saved as JSON
// and read back as a snapshot would be. It checks that the JSON is stable.
func jsonRestore(t *testing.T, s *Switch) *Switch {
	t.Helper()
	b, err := json.Marshal(s.State())
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	r := NewSwitch(s.Addrs())
	if err := r.Restore(st); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(r.State())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatalf("restored switch's state differs from the original's:\n%s\n%s", b, b2)
	}
	return r
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
// delivery; rules matched by an independent loop and applied in the
// documented steps; rate-limited links simulated epoch by epoch. It shares
// only the draws (draw, hit, uniform, below) with the switch, since those
// define which packets a seed affects.
func model(sc scenario) [][]Frame {
	byAddr := func(a netip.Addr) int {
		for i, x := range sc.addrs {
			if x == a {
				return i
			}
		}
		return -1
	}
	type modelLink struct {
		last uint64            // the epoch the link's last frame left in
		used map[uint64]uint64 // bytes of each epoch's budget used
	}
	links := map[[2]int]*modelLink{}
	seq := make([]uint64, len(sc.addrs))
	var seed uint64
	var rules []Rule
	var queue []Frame
	var out [][]Frame
	for _, o := range sc.ops {
		switch o.kind {
		case "rules":
			rules = o.rules
		case "seed":
			seed = o.seed
		case "send":
			for _, p := range o.packets {
				src, sq := o.src, seq[o.src]
				seq[o.src]++
				if len(p) < 20 || p[0]>>4 != 4 {
					continue
				}
				dst := byAddr(netip.AddrFrom4([4]byte{p[16], p[17], p[18], p[19]}))
				if dst < 0 || dst == src {
					continue
				}
				var on []int
				for i, r := range rules {
					if (r.Src == -1 || r.Src == src) && (r.Dst == -1 || r.Dst == dst) &&
						o.epoch >= r.FromEpoch && (r.UntilEpoch == 0 || o.epoch < r.UntilEpoch) {
						on = append(on, i)
					}
				}
				lost := false
				for _, i := range on {
					if rules[i].Drop || hit(draw(seed, src, sq, i, purposeLoss, 0), rules[i].LossPPM) {
						lost = true
					}
				}
				if lost {
					continue
				}
				leave := o.epoch + 1
				var rate uint64
				for _, i := range on {
					if r := rules[i].RateBytesPerEpoch; r != 0 && (rate == 0 || r < rate) {
						rate = r
					}
				}
				if rate != 0 {
					l := links[[2]int{src, dst}]
					if l == nil {
						l = &modelLink{used: map[uint64]uint64{}}
						links[[2]int{src, dst}] = l
					}
					e := max(leave, l.last)
					for left := uint64(len(p)); ; e++ {
						take := min(left, rate-min(rate, l.used[e]))
						l.used[e] += take
						if left -= take; left == 0 {
							break
						}
					}
					leave, l.last = e, e
				}
				copies := uint8(1)
				for _, i := range on {
					if hit(draw(seed, src, sq, i, purposeDuplicate, 0), rules[i].DuplicatePPM) {
						copies = 2
					}
				}
				for cp := uint8(0); cp < copies; cp++ {
					f := Frame{Src: src, Dst: dst, Seq: sq, SentEpoch: o.epoch, DeliverEpoch: leave, Copy: cp, Data: slices.Clone(p)}
					flipped := false
					for _, i := range on {
						r := rules[i]
						f.DeliverEpoch += r.DelayEpochs + uniform(draw(seed, src, sq, i, purposeJitter, cp), r.JitterEpochs)
						if hit(draw(seed, src, sq, i, purposeReorder, cp), r.ReorderPPM) {
							f.DeliverEpoch += r.ReorderEpochs
						}
						if !flipped && hit(draw(seed, src, sq, i, purposeCorrupt, cp), r.CorruptPPM) {
							flipped = true
							// Every bit corruption may touch, in order.
							var cand []int
							for b := 8 * max(20, int(p[0]&0xf)*4); b < 8*len(p); b++ {
								cand = append(cand, b)
							}
							if len(cand) == 0 {
								cand = []int{80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95}
							}
							b := cand[below(draw(seed, src, sq, i, purposeCorruptBit, cp), uint64(len(cand)))]
							f.Data[b/8] ^= 1 << (b % 8)
						}
					}
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
				if a.Seq != b.Seq {
					return cmpU(a.Seq, b.Seq)
				}
				return int(a.Copy) - int(b.Copy)
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
	var delayed, reordered, rated int
	for seed := uint64(1); seed <= 200; seed++ {
		sc := genScenario(t, seed)
		first, stats := run(t, sc, nil, -1)
		second, stats2 := run(t, sc, nil, -1)
		if !reflect.DeepEqual(first, second) || stats != stats2 {
			t.Fatalf("seed %d: two runs of the same input differ", seed)
		}
		shuffled, stats3 := run(t, sc, rand.New(rand.NewPCG(seed, 7)), -1)
		if !reflect.DeepEqual(first, shuffled) || stats != stats3 {
			t.Fatalf("seed %d: the order of Send calls across sources changed the output", seed)
		}
		for _, at := range []int{len(sc.ops) / 3, len(sc.ops) * 2 / 3} {
			restored, stats4 := run(t, sc, nil, at)
			if !reflect.DeepEqual(first, restored) || stats != stats4 {
				t.Fatalf("seed %d: a switch restored at op %d of %d went on differently", seed, at, len(sc.ops))
			}
		}
		if want := model(sc); !reflect.DeepEqual(first, want) {
			t.Fatalf("seed %d: switch disagrees with the reference model", seed)
		}

		var delivered uint64
		lastSeq := map[[2]int]uint64{}
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
				link := [2]int{f.Src, f.Dst}
				if last, ok := lastSeq[link]; ok && f.Seq < last {
					reordered++
				}
				lastSeq[link] = max(lastSeq[link], f.Seq)
			}
			delivered += uint64(len(batch))
		}
		if stats.Delivered != delivered {
			t.Fatalf("seed %d: Stats.Delivered=%d, counted %d", seed, stats.Delivered, delivered)
		}
		// Everything was drained, so each frame ended in exactly one bucket.
		if got := stats.Delivered + stats.DroppedNoRoute + stats.DroppedMalformed + stats.DroppedByRule; got != stats.Sent+stats.Duplicated {
			t.Fatalf("seed %d: %+v does not account for every packet sent", seed, stats)
		}
		for _, o := range sc.ops {
			if o.kind == "rules" {
				for _, r := range o.rules {
					if r.RateBytesPerEpoch != 0 {
						rated++
					}
				}
			}
		}
		total.Sent += stats.Sent
		total.Delivered += stats.Delivered
		total.DroppedNoRoute += stats.DroppedNoRoute
		total.DroppedMalformed += stats.DroppedMalformed
		total.DroppedByRule += stats.DroppedByRule
		total.Duplicated += stats.Duplicated
		total.Corrupted += stats.Corrupted
	}
	t.Logf("totals %+v, %d delayed frames, %d overtaken, %d rate rules", total, delayed, reordered, rated)
	if total.DroppedNoRoute == 0 || total.DroppedMalformed == 0 || total.DroppedByRule == 0 ||
		total.Duplicated == 0 || total.Corrupted == 0 || delayed == 0 || reordered == 0 || rated == 0 {
		t.Fatalf("generator no longer covers every path: %+v, %d delayed, %d overtaken, %d rate rules", total, delayed, reordered, rated)
	}
}
