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
	queue  frameHeap
	stats  Stats
}

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
}

// Stats counts what the switch did with the packets it was given. Every packet
// passed to Send is counted in Sent and, eventually, in exactly one other
// field, so Sent == Delivered + DroppedNoRoute + DroppedMalformed +
// DroppedByRule + Pending() at all times.
type Stats struct {
	Sent      uint64 `json:"sent"`      // packets passed to Send, whatever became of them
	Delivered uint64 `json:"delivered"` // frames returned by Deliver
	// DroppedNoRoute counts packets whose destination is no node's address
	// or is the sender's own address (a guest's traffic to itself never
	// leaves it, so reaching the switch means it is misaddressed).
	DroppedNoRoute   uint64 `json:"dropped_no_route"`
	DroppedMalformed uint64 `json:"dropped_malformed"` // not IPv4, or shorter than an IPv4 header
	DroppedByRule    uint64 `json:"dropped_by_rule"`   // matched a Rule with Drop set
}

// NewSwitch returns a switch in which node i owns addrs[i]. It panics if an
// address is not IPv4 or is given to two nodes: that is a bug in the cluster
// configuration, not something a guest can cause.
func NewSwitch(addrs []netip.Addr) *Switch {
	s := &Switch{
		addrs:  make([]netip.Addr, len(addrs)),
		byAddr: make(map[netip.Addr]int, len(addrs)),
		seq:    make([]uint64, len(addrs)),
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
// Stats: never an error, because the guest is untrusted. Otherwise the frame
// is due at epoch+1 (frames sent in epoch k are delivered no earlier than the
// start of epoch k+1), plus whatever the first matching Rule adds, unless
// that rule drops it.
//
// Send copies the packets, so the caller may reuse their buffers. It panics
// if src is not a node index, which only a controller bug can cause.
func (s *Switch) Send(epoch uint64, src int, packets [][]byte) {
	if src < 0 || src >= len(s.addrs) {
		panic(fmt.Sprintf("scheduler: Send from node %d, have %d nodes", src, len(s.addrs)))
	}
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
		deliver := satAdd(epoch, 1)
		if r, ok := s.match(src, dst, epoch); ok {
			if r.Drop {
				s.stats.DroppedByRule++
				continue
			}
			deliver = satAdd(deliver, r.DelayEpochs)
		}
		heap.Push(&s.queue, Frame{
			Src:          src,
			Dst:          dst,
			Seq:          seq,
			SentEpoch:    epoch,
			DeliverEpoch: deliver,
			Data:         append([]byte(nil), p...),
		})
	}
}

// Deliver removes and returns every frame due at the start of epoch `epoch`
// (DeliverEpoch <= epoch), in the total order (DeliverEpoch, Src, Seq). The
// controller writes each frame into its Dst's receive ring. It returns nil
// when nothing is due.
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
// now on; frames already queued keep the delivery epoch they were given. The
// slice is copied.
func (s *Switch) SetRules(rules []Rule) {
	s.rules = append([]Rule(nil), rules...)
}

// Rules returns a copy of the fault table.
func (s *Switch) Rules() []Rule {
	return append([]Rule(nil), s.rules...)
}

func (s *Switch) match(src, dst int, epoch uint64) (Rule, bool) {
	for _, r := range s.rules {
		if r.Matches(src, dst, epoch) {
			return r, true
		}
	}
	return Rule{}, false
}

// satAdd saturates rather than wraps so that an absurd delay postpones a frame
// forever instead of making it due immediately.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// frameLess is the delivery order. (Src, Seq) is unique, so this is a total
// order and the heap's pop sequence cannot depend on insertion history.
func frameLess(a, b *Frame) bool {
	if a.DeliverEpoch != b.DeliverEpoch {
		return a.DeliverEpoch < b.DeliverEpoch
	}
	if a.Src != b.Src {
		return a.Src < b.Src
	}
	return a.Seq < b.Seq
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
// frames in flight, the sequence numbers, the fault table and the
// counters. For snapshots; its JSON form is stable.
type State struct {
	Seq   []uint64 `json:"seq"`
	Rules []Rule   `json:"rules,omitempty"`
	Queue []Frame  `json:"queue,omitempty"` // in delivery order
	Stats Stats    `json:"stats"`
}

// State returns a deep copy of s's state.
func (s *Switch) State() State {
	st := State{Seq: append([]uint64(nil), s.seq...), Rules: append([]Rule(nil), s.rules...), Stats: s.stats}
	for _, f := range s.queue {
		f.Data = append([]byte(nil), f.Data...)
		st.Queue = append(st.Queue, f)
	}
	sort.Slice(st.Queue, func(i, j int) bool { return frameLess(&st.Queue[i], &st.Queue[j]) })
	return st
}

// Restore replaces s's state with a deep copy of st, which must come from
// a switch with the same nodes.
func (s *Switch) Restore(st State) error {
	if len(st.Seq) != len(s.addrs) {
		return fmt.Errorf("scheduler: switch state has %d nodes, this switch %d", len(st.Seq), len(s.addrs))
	}
	for _, f := range st.Queue {
		if f.Src < 0 || f.Src >= len(s.addrs) || f.Dst < 0 || f.Dst >= len(s.addrs) {
			return fmt.Errorf("scheduler: switch state: frame %d→%d names a node that does not exist", f.Src, f.Dst)
		}
	}
	s.seq = append([]uint64(nil), st.Seq...)
	s.rules = append([]Rule(nil), st.Rules...)
	s.queue = s.queue[:0]
	for _, f := range st.Queue {
		f.Data = append([]byte(nil), f.Data...)
		s.queue = append(s.queue, f)
	}
	heap.Init(&s.queue)
	s.stats = st.Stats
	return nil
}
