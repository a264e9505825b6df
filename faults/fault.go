package faults

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Topology says who can be targeted. Index i of Names is node i everywhere:
// in Fault, in the switch and in the cluster driver.
type Topology struct {
	// Names are the guests' names, unique; hand-written faults refer to
	// nodes by these.
	Names []string
	// Sidecar is the index of the sidecar, the guest that runs the test
	// workload, or -1 if there is none. Random choices never target it.
	Sidecar int
}

// candidates returns the nodes random choices may target: all but the
// sidecar, in index order.
func (t Topology) candidates() []int {
	var out []int
	for i := range t.Names {
		if i != t.Sidecar {
			out = append(out, i)
		}
	}
	return out
}

func (t Topology) validate() error {
	if t.Sidecar < -1 || t.Sidecar >= len(t.Names) {
		return fmt.Errorf("faults: topology: sidecar index %d is out of range for %d nodes", t.Sidecar, len(t.Names))
	}
	seen := make(map[string]bool, len(t.Names))
	for _, n := range t.Names {
		if seen[n] {
			return fmt.Errorf("faults: topology: node name %q appears twice", n)
		}
		seen[n] = true
	}
	return nil
}

// Fault is one compiled fault: its targets are node indices and every random
// choice has been made. Which fields a kind uses is documented on the kind;
// the others are zero.
type Fault struct {
	// ID is the fault's position in its Schedule, from 0.
	ID   int
	Kind Kind
	// Nodes are the targets of process, node and clock faults, and the
	// "from" side of link faults.
	Nodes []int
	// To is the other side of link faults; empty means every other node,
	// the sidecar included.
	To []int
	// Groups are a partition's components. A frame between two nodes that
	// are each in some group is dropped unless one group holds both; nodes
	// in no group are unaffected. Hand-written groups are disjoint; the
	// bridge and majorities-ring modes produce groups that overlap (see
	// the package documentation).
	Groups [][]int
	// OneWay limits a link fault to frames from Nodes to To, and a
	// partition to frames from Groups[0] to the other groups.
	OneWay bool
	// Proc is the process a process fault acts on; "" is the node's main
	// program.
	Proc string
	// Percent is the share of frames a loss, duplicate, reorder or corrupt
	// fault affects, in (0, 100].
	Percent float64
	// Delay is a delay fault's fixed delay and how long reorder holds a
	// frame; Jitter is a delay fault's extra uniform delay.
	Delay, Jitter time.Duration
	// Rate is a clog's limit in bytes per second per link.
	Rate int64
	// Ratio is a throttle's share of one CPU, in (0, 1].
	Ratio float64
	// Offset is a clock-jump's signed step and a clock-strobe's amplitude.
	Offset time.Duration
	// Period is the time between a clock-strobe's steps.
	Period time.Duration
	// PPM is a clock-skew's frequency offset in parts per million, with
	// |PPM| <= MaxPPM.
	PPM int64
	// Start and End are the epochs the fault is active in: Start <= epoch <
	// End, with End > Start. A fault written without a length, or one that
	// would outlast the run, ends at the run's last epoch + 1.
	Start, End uint64
}

// MaxPPM bounds a clock-skew's |PPM|: adjtimex refuses more than 500 ppm.
const MaxPPM = 500

// String returns the fault on one line, with only the fields its kind uses,
// nodes as indices and durations in Go syntax, for example
//
//	#3 partition groups=[[0] [1 2]] epochs=[2000,5000)
//	#4 delay nodes=[1] to=[0 2] oneway delay=20ms jitter=5ms epochs=[2100,2600)
//
// The form is stable: the event log and the trace hash use it.
func (f Fault) String() string { return f.Format(nil) }

// Format is String with node indices replaced by names[i] (where names
// has them), for logs a person reads:
//
//	#3 partition groups=[[node-1] [node-2 node-3]] epochs=[2000,5000)
func (f Fault) Format(names []string) string {
	name := func(i int) string {
		if i >= 0 && i < len(names) {
			return names[i]
		}
		return strconv.Itoa(i)
	}
	list := func(l []int) string {
		parts := make([]string, len(l))
		for i, n := range l {
			parts[i] = name(n)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", f.ID, f.Kind)
	if f.Kind == Partition {
		groups := make([]string, len(f.Groups))
		for i, g := range f.Groups {
			groups[i] = list(g)
		}
		fmt.Fprintf(&b, " groups=[%s]", strings.Join(groups, " "))
	} else {
		fmt.Fprintf(&b, " nodes=%s", list(f.Nodes))
	}
	if len(f.To) > 0 {
		fmt.Fprintf(&b, " to=%s", list(f.To))
	}
	if f.OneWay {
		b.WriteString(" oneway")
	}
	if f.Proc != "" {
		fmt.Fprintf(&b, " proc=%s", strconv.Quote(f.Proc))
	}
	switch f.Kind {
	case Loss, Duplicate, Corrupt:
		fmt.Fprintf(&b, " percent=%s", strconv.FormatFloat(f.Percent, 'g', -1, 64))
	case Reorder:
		fmt.Fprintf(&b, " percent=%s delay=%v", strconv.FormatFloat(f.Percent, 'g', -1, 64), f.Delay)
	case Delay:
		fmt.Fprintf(&b, " delay=%v", f.Delay)
		if f.Jitter != 0 {
			fmt.Fprintf(&b, " jitter=%v", f.Jitter)
		}
	case Clog:
		fmt.Fprintf(&b, " rate=%dB/s", f.Rate)
	case Throttle:
		fmt.Fprintf(&b, " ratio=%s", strconv.FormatFloat(f.Ratio, 'g', -1, 64))
	case ClockJump:
		fmt.Fprintf(&b, " offset=%v", f.Offset)
	case ClockStrobe:
		fmt.Fprintf(&b, " offset=%v period=%v", f.Offset, f.Period)
	case ClockSkew:
		fmt.Fprintf(&b, " ppm=%d", f.PPM)
	}
	fmt.Fprintf(&b, " epochs=[%d,%d)", f.Start, f.End)
	return b.String()
}

// Schedule is a run's faults, sorted by (Start, ID), with ID equal to the
// position.
type Schedule []Fault

// FirstEpoch is the earliest epoch a fault starts in: the boundary into
// epoch 1 belongs to boot (a warm start caches the cluster there, before
// anything run-specific), so a fault written for an earlier time starts at
// epoch 2 and a policy draws nothing before it.
const FirstEpoch = 2

// Starting returns the faults whose Start is epoch.
func (s Schedule) Starting(epoch uint64) []Fault {
	var out []Fault
	for _, f := range s {
		if f.Start == epoch {
			out = append(out, f)
		}
	}
	return out
}

// Ending returns the faults whose End is epoch: the first epoch they are no
// longer active in.
func (s Schedule) Ending(epoch uint64) []Fault {
	var out []Fault
	for _, f := range s {
		if f.End == epoch {
			out = append(out, f)
		}
	}
	return out
}

// Active returns the faults active in epoch: Start <= epoch < End.
func (s Schedule) Active(epoch uint64) []Fault {
	var out []Fault
	for _, f := range s {
		if f.Start <= epoch && epoch < f.End {
			out = append(out, f)
		}
	}
	return out
}
