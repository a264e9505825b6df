package scheduler

import (
	"container/heap"
	"fmt"
	"math"
	"net/netip"
	"sort"
)

// ipv4HeaderLen is the length of an IPv4 header without options: anything
// shorter cannot hold a destination address.
const ipv4HeaderLen = 20

// Switch routes IPv4 packets between nodes. Node i owns address addrs[i].
//
// A Switch is not safe for concurrent use; the controller drives it from the
// barrier, where nothing else runs.
type Switch struct {
	addrs  []netip.Addr
	byAddr map[netip.Addr]int // lookups only: never iterated
	seq    []uint64           // next Seq of each source
	rules  []Rule
	seed   uint64
	links  []link // rate-limited link state, indexed src*len(addrs)+dst
	queue  frameHeap
	stats  Stats
}

// link is the serialiser of one (src, dst) link: it has used bytes of the
// budget of epoch epoch, and all the budget of every earlier epoch.
type link struct{ epoch, bytes uint64 }

// Frame is one packet in flight.
type Frame struct {
	Src, Dst int // node indices
	// Seq is the per-source sequence number assigned by Send, starting at 0
	// for each source. Every packet a node sends consumes one, including the
	// ones the switch drops, so a Seq names the same packet whatever the
	// fault table says and gaps show where packets were lost.
	Seq          uint64
	SentEpoch    uint64
	DeliverEpoch uint64
	Data         []byte // the IPv4 packet, starting with the IP header
	// Copy is 0 for the packet as sent and 1 for the duplicate a Rule's
	// DuplicatePPM added. Both copies are the same packet, so they share Src
	// and Seq; Copy is the last key of the delivery order, which keeps that
	// order total.
	Copy uint8 `json:",omitempty"`
}

// Stats counts what the switch did with the packets it was given. Every packet
// passed to Send is counted in Sent, every duplicate a rule makes in
// Duplicated, and each of those frames, eventually, in exactly one of
// Delivered and the Dropped fields, so
//
//	Sent + Duplicated == Delivered + DroppedNoRoute + DroppedMalformed +
//	                     DroppedByRule + Pending()
//
// at all times. Corrupted is outside that sum: a corrupted frame is still
// delivered (or pending) and counted there too.
type Stats struct {
	Sent      uint64 `json:"sent"`      // packets passed to Send, whatever became of them
	Delivered uint64 `json:"delivered"` // frames returned by Deliver, duplicates included
	// DroppedNoRoute counts packets whose destination is no node's address
	// or is the sender's own address (a guest's traffic to itself never
	// leaves it, so reaching the switch means it is misaddressed).
	DroppedNoRoute   uint64 `json:"dropped_no_route"`
	DroppedMalformed uint64 `json:"dropped_malformed"` // not IPv4, or shorter than an IPv4 header
	DroppedByRule    uint64 `json:"dropped_by_rule"`   // matched a Rule with Drop set, or lost to a LossPPM draw
	Duplicated       uint64 `json:"duplicated"`        // second copies queued by DuplicatePPM draws
	Corrupted        uint64 `json:"corrupted"`         // copies queued with one bit flipped by a CorruptPPM draw
}

// NewSwitch returns a switch in which node i owns addrs[i], with an empty
// fault table and seed 0. It panics if an address is not IPv4 or is given to
// two nodes: that is a bug in the cluster configuration, not something a
// guest can cause.
func NewSwitch(addrs []netip.Addr) *Switch {
	s := &Switch{
		addrs:  make([]netip.Addr, len(addrs)),
		byAddr: make(map[netip.Addr]int, len(addrs)),
		seq:    make([]uint64, len(addrs)),
		links:  make([]link, len(addrs)*len(addrs)),
	}
	for i, a := range addrs {
		// A 4-in-6 form of a node address must still route to that node.
		a = a.Unmap()
		if !a.Is4() {
			panic(fmt.Sprintf("scheduler: node %d address %v is not IPv4", i, addrs[i]))
		}
		if j, dup := s.byAddr[a]; dup {
			panic(fmt.Sprintf("scheduler: nodes %d and %d share address %v", j, i, a))
		}
		s.addrs[i] = a
		s.byAddr[a] = i
	}
	return s
}

// Addrs returns the node addresses, indexed by node.
func (s *Switch) Addrs() []netip.Addr {
	return append([]netip.Addr(nil), s.addrs...)
}

// Send accepts the packets node src sent during epoch `epoch` (the controller
// collects them at the barrier that ends that epoch) in the order the node
// sent them. Each gets the next Seq of src.
//
// The destination is the packet's IPv4 destination address looked up among
// the node addresses. A packet that is not IPv4, is shorter than 20 bytes, or
// whose destination is no node's (or is src itself) is dropped and counted in
// Stats: never an error, because the guest is untrusted.
//
// Otherwise every Rule matching (src, dst, epoch) applies, in these steps:
//
//  1. Drop and loss: the packet is dropped (DroppedByRule) if a rule has Drop
//     set or a rule's LossPPM draw hits. Dropped packets use no bandwidth.
//  2. Rate: if a rule sets RateBytesPerEpoch, the smallest such rate R
//     applies, and the packet (L bytes) goes through the (src, dst) link's
//     serialiser. The link carries R bytes per epoch, in the order the
//     packets were sent; a packet is ready for it at epoch+1, and starts in
//     the later of that epoch and the epoch the packet before it on the link
//     finished in, taking what remains of that epoch's budget, then R bytes
//     of each following epoch, until its last byte has gone through. The
//     epoch of its last byte replaces epoch+1 below. So a packet that fits
//     in the rest of an epoch's budget leaves in that epoch, and a packet
//     larger than R takes several. Without a rate, the link is unlimited and
//     its state untouched.
//  3. Duplicate: if a rule's DuplicatePPM draw hits, a second copy (Copy 1)
//     is made (Duplicated). Duplication happens after the link, so the copy
//     costs no bandwidth; from here on each copy has its own draws.
//  4. Delay: each copy is due at epoch+1 (or the rate's epoch) plus the sum
//     of every rule's DelayEpochs, plus for each rule a uniform draw from
//     [0, JitterEpochs], plus ReorderEpochs for each rule whose ReorderPPM
//     draw hits. Frames sent in epoch k are thus never due before k+1.
//  5. Corrupt: if a rule's CorruptPPM draw hits, one bit of the copy is
//     flipped (Corrupted); however many rules hit, at most one bit per copy,
//     at a position drawn for the first such rule. The bit lies in the
//     payload, i.e. after the IPv4 header whose length the IHL field gives;
//     a packet with no payload gets a bit of its header checksum flipped
//     instead, so the receiver's IP stack sees a damaged header and discards
//     it as it would on a real network. No checksum is fixed up. Routing was
//     decided before step 1 and is unaffected.
//
// Every random draw is a hash of the seed and of (src, Seq, rule index,
// purpose, copy); see [Switch.SetSeed].
//
// Send copies the packets, so the caller may reuse their buffers (corruption
// flips bits in the copy). It panics if src is not a node index, which only
// a controller bug can cause.
func (s *Switch) Send(epoch uint64, src int, packets [][]byte) {
	if src < 0 || src >= len(s.addrs) {
		panic(fmt.Sprintf("scheduler: Send from node %d, have %d nodes", src, len(s.addrs)))
	}
	var buf [8]int
	for _, p := range packets {
		seq := s.seq[src]
		s.seq[src]++
		s.stats.Sent++

		if len(p) < ipv4HeaderLen || p[0]>>4 != 4 {
			s.stats.DroppedMalformed++
			continue
		}
		dst, ok := s.byAddr[netip.AddrFrom4([4]byte(p[16:20]))]
		if !ok || dst == src {
			s.stats.DroppedNoRoute++
			continue
		}
		// The indices of the matching rules, in table order.
		matched := buf[:0]
		for i := range s.rules {
			if s.rules[i].Matches(src, dst, epoch) {
				matched = append(matched, i)
			}
		}

		drop, dup := false, false
		var delay, rate uint64
		for _, i := range matched {
			r := &s.rules[i]
			drop = drop || r.Drop || (r.LossPPM != 0 && hit(draw(s.seed, src, seq, i, purposeLoss, 0), r.LossPPM))
			dup = dup || (r.DuplicatePPM != 0 && hit(draw(s.seed, src, seq, i, purposeDuplicate, 0), r.DuplicatePPM))
			delay = satAdd(delay, r.DelayEpochs)
			if r.RateBytesPerEpoch != 0 && (rate == 0 || r.RateBytesPerEpoch < rate) {
				rate = r.RateBytesPerEpoch
			}
		}
		if drop {
			s.stats.DroppedByRule++
			continue
		}
		ready := satAdd(epoch, 1)
		if rate != 0 {
			ready = s.serialise(src, dst, ready, uint64(len(p)), rate)
		}
		copies := uint8(1)
		if dup {
			copies = 2
			s.stats.Duplicated++
		}
		for cp := range copies {
			deliver := satAdd(ready, delay)
			corrupt := -1 // index of the first rule whose corruption draw hit
			for _, i := range matched {
				r := &s.rules[i]
				if r.JitterEpochs != 0 {
					deliver = satAdd(deliver, uniform(draw(s.seed, src, seq, i, purposeJitter, cp), r.JitterEpochs))
				}
				if r.ReorderPPM != 0 && hit(draw(s.seed, src, seq, i, purposeReorder, cp), r.ReorderPPM) {
					deliver = satAdd(deliver, r.ReorderEpochs)
				}
				if corrupt < 0 && r.CorruptPPM != 0 && hit(draw(s.seed, src, seq, i, purposeCorrupt, cp), r.CorruptPPM) {
					corrupt = i
				}
			}
			data := append([]byte(nil), p...)
			if corrupt >= 0 {
				flipBit(data, draw(s.seed, src, seq, corrupt, purposeCorruptBit, cp))
				s.stats.Corrupted++
			}
			heap.Push(&s.queue, Frame{
				Src:          src,
				Dst:          dst,
				Seq:          seq,
				SentEpoch:    epoch,
				DeliverEpoch: deliver,
				Data:         data,
				Copy:         cp,
			})
		}
	}
}

// serialise passes n bytes through the (src, dst) link at rate bytes per
// epoch, starting no earlier than epoch ready, and returns the epoch in which
// the last byte goes through (step 2 of [Switch.Send]).
func (s *Switch) serialise(src, dst int, ready, n, rate uint64) uint64 {
	l := &s.links[src*len(s.addrs)+dst]
	start, used := ready, uint64(0)
	if l.epoch >= ready {
		start, used = l.epoch, l.bytes
	}
	// A rate lowered since the link's last packet may leave used above it.
	room := rate - min(used, rate)
	if n <= room {
		l.epoch, l.bytes = start, used+n
		return start
	}
	rest := n - room
	more := rest / rate // whole epochs after start that rest needs
	if rest%rate != 0 {
		more++
	}
	l.epoch, l.bytes = satAdd(start, more), rest-(more-1)*rate
	return l.epoch
}

// flipBit flips the bit of p that x picks: one in the payload after the IPv4
// header (IHL words, at least 20 bytes), or, when there is no payload, one in
// the header checksum (bytes 10 and 11).
func flipBit(p []byte, x uint64) {
	lo, hi := int(p[0]&0x0f)*4, len(p)
	lo = max(lo, ipv4HeaderLen)
	if lo >= hi {
		lo, hi = 10, 12
	}
	bit := below(x, uint64(hi-lo)*8)
	p[lo+int(bit/8)] ^= 1 << (bit % 8)
}

// Deliver removes and returns every frame due at the start of epoch `epoch`
// (DeliverEpoch <= epoch), in the total order (DeliverEpoch, Src, Seq, Copy).
// The controller writes each frame into its Dst's receive ring. It returns
// nil when nothing is due.
func (s *Switch) Deliver(epoch uint64) []Frame {
	var out []Frame
	for len(s.queue) > 0 && s.queue[0].DeliverEpoch <= epoch {
		out = append(out, heap.Pop(&s.queue).(Frame))
	}
	s.stats.Delivered += uint64(len(out))
	return out
}

// Pending reports how many frames are still queued.
func (s *Switch) Pending() int { return len(s.queue) }

// Stats returns the counters accumulated since NewSwitch.
func (s *Switch) Stats() Stats { return s.stats }

// SetRules replaces the fault table. Rules take effect for packets sent from
// now on; frames already queued keep the delivery epoch and bytes they were
// given, and the rate-limited links keep the bytes already committed to them.
// The slice is copied. If a rule fails [Rule.Validate], SetRules returns its
// error and leaves the table as it was.
func (s *Switch) SetRules(rules []Rule) error {
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("scheduler: fault table entry %d: %w", i, err)
		}
	}
	s.rules = append([]Rule(nil), rules...)
	return nil
}

// Rules returns a copy of the fault table.
func (s *Switch) Rules() []Rule {
	return append([]Rule(nil), s.rules...)
}

// SetSeed sets the seed of the switch's random draws (loss, duplication,
// jitter, reordering, corruption). A draw is a hash of the seed and of what
// it decides: the packet's (Src, Seq), the index of the rule in the table,
// the purpose and the copy. So there is no generator state to save, the fate
// of a packet does not depend on how many draws other packets needed, and a
// switch given the same seed, rules and packets decides the same.
//
// Draws are made in Send, so changing the seed mid-run (a branch) changes
// only the packets sent afterwards: frames already queued keep their delivery
// epochs and bytes, and the rate-limited links' state is not random.
func (s *Switch) SetSeed(seed uint64) { s.seed = seed }

// Seed returns the seed set by SetSeed (0 by default).
func (s *Switch) Seed() uint64 { return s.seed }

// satAdd saturates rather than wraps so that an absurd delay postpones a frame
// forever instead of making it due immediately.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// frameLess is the delivery order. (Src, Seq, Copy) is unique, so this is a
// total order and the heap's pop sequence cannot depend on insertion history.
func frameLess(a, b *Frame) bool {
	if a.DeliverEpoch != b.DeliverEpoch {
		return a.DeliverEpoch < b.DeliverEpoch
	}
	if a.Src != b.Src {
		return a.Src < b.Src
	}
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return a.Copy < b.Copy
}

// frameHeap is a min-heap in delivery order, so Deliver costs O(k log n) for
// k due frames rather than a scan of everything in flight.
type frameHeap []Frame

func (h frameHeap) Len() int           { return len(h) }
func (h frameHeap) Less(i, j int) bool { return frameLess(&h[i], &h[j]) }
func (h frameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)        { *h = append(*h, x.(Frame)) }
func (h *frameHeap) Pop() any {
	old := *h
	n := len(old)
	f := old[n-1]
	// Let the popped frame's data be collected once the caller drops it.
	old[n-1] = Frame{}
	*h = old[:n-1]
	return f
}

// State is everything a Switch needs to go on from where it is: the
// frames in flight, the sequence numbers, the fault table, the seed, the
// rate-limited links and the counters. For snapshots; its JSON form is
// stable (Links and Queue are sorted). A state saved before the seed, the
// links and the fault fields of Rule, Frame and Stats existed decodes with
// them at zero, and restores as a switch with seed 0, idle links and no
// duplicates in flight.
type State struct {
	Seq   []uint64    `json:"seq"`
	Rules []Rule      `json:"rules,omitempty"`
	Seed  uint64      `json:"seed,omitempty"`
	Links []LinkState `json:"links,omitempty"` // sorted by (Src, Dst)
	Queue []Frame     `json:"queue,omitempty"` // in delivery order
	Stats Stats       `json:"stats"`
}

// LinkState is the serialiser of one rate-limited (Src, Dst) link (step 2 of
// [Switch.Send]): it has used Bytes of the budget of epoch Epoch, and all the
// budget of every earlier epoch. Links no rate-limited packet has crossed
// are left out.
type LinkState struct {
	Src   int    `json:"src"`
	Dst   int    `json:"dst"`
	Epoch uint64 `json:"epoch"`
	Bytes uint64 `json:"bytes"`
}

// State returns a deep copy of s's state.
func (s *Switch) State() State {
	st := State{
		Seq:   append([]uint64(nil), s.seq...),
		Rules: append([]Rule(nil), s.rules...),
		Seed:  s.seed,
		Stats: s.stats,
	}
	n := len(s.addrs)
	for i, l := range s.links {
		if l != (link{}) {
			st.Links = append(st.Links, LinkState{Src: i / n, Dst: i % n, Epoch: l.epoch, Bytes: l.bytes})
		}
	}
	for _, f := range s.queue {
		f.Data = append([]byte(nil), f.Data...)
		st.Queue = append(st.Queue, f)
	}
	sort.Slice(st.Queue, func(i, j int) bool { return frameLess(&st.Queue[i], &st.Queue[j]) })
	return st
}

// Restore replaces s's state with a deep copy of st, which must come from
// a switch with the same nodes. On error s is unchanged.
func (s *Switch) Restore(st State) error {
	n := len(s.addrs)
	if len(st.Seq) != n {
		return fmt.Errorf("scheduler: switch state has %d nodes, this switch %d", len(st.Seq), n)
	}
	for i, r := range st.Rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("scheduler: switch state: fault table entry %d: %w", i, err)
		}
	}
	links := make([]link, n*n)
	for _, l := range st.Links {
		if l.Src < 0 || l.Src >= n || l.Dst < 0 || l.Dst >= n {
			return fmt.Errorf("scheduler: switch state: link %d→%d names a node that does not exist", l.Src, l.Dst)
		}
		if links[l.Src*n+l.Dst] != (link{}) {
			return fmt.Errorf("scheduler: switch state: link %d→%d listed twice", l.Src, l.Dst)
		}
		links[l.Src*n+l.Dst] = link{epoch: l.Epoch, bytes: l.Bytes}
	}
	for _, f := range st.Queue {
		if f.Src < 0 || f.Src >= n || f.Dst < 0 || f.Dst >= n {
			return fmt.Errorf("scheduler: switch state: frame %d→%d names a node that does not exist", f.Src, f.Dst)
		}
		if f.Copy > 1 {
			return fmt.Errorf("scheduler: switch state: frame %d→%d seq %d is copy %d; a packet has at most 2", f.Src, f.Dst, f.Seq, f.Copy)
		}
	}
	s.seq = append([]uint64(nil), st.Seq...)
	s.rules = append([]Rule(nil), st.Rules...)
	s.seed = st.Seed
	s.links = links
	s.queue = s.queue[:0]
	for _, f := range st.Queue {
		f.Data = append([]byte(nil), f.Data...)
		s.queue = append(s.queue, f)
	}
	heap.Init(&s.queue)
	s.stats = st.Stats
	return nil
}
