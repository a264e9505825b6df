package faults

// Kind names one sort of fault. Kinds fall into four classes (see
// [Kind.Class]); what each does, and which [Fault] fields it uses, is on its
// constant.
type Kind string

// Network faults act on frames in the virtual switch; [NetRules] turns them
// into switch rules. All but Partition are link faults: they act on the
// links between Fault.Nodes and Fault.To, both ways unless Fault.OneWay.
const (
	// Partition drops frames between Fault.Groups: a frame between two
	// nodes that are each in some group is dropped unless one group holds
	// both. Nodes in no group (the sidecar, unless written into a group) are
	// unaffected. With OneWay only frames sent from Groups[0] are dropped.
	Partition Kind = "partition"
	// Loss drops Percent of the frames on the links.
	Loss Kind = "loss"
	// Delay holds every frame on the links for Delay plus a uniformly drawn
	// 0..Jitter, rounded up to whole epochs.
	Delay Kind = "delay"
	// Duplicate delivers Percent of the frames twice.
	Duplicate Kind = "duplicate"
	// Reorder holds Percent of the frames for Delay (at least one epoch), so
	// that frames sent after them overtake them.
	Reorder Kind = "reorder"
	// Corrupt flips a bit in Percent of the frames.
	Corrupt Kind = "corrupt"
	// Clog limits each link to Rate bytes per second; frames over the limit
	// wait for a later epoch.
	Clog Kind = "clog"
)

// Process faults act on one process of each node in Fault.Nodes: Fault.Proc,
// or the node's main program when Proc is "".
const (
	// Kill sends SIGKILL at Start and starts the process again at End.
	Kill Kind = "kill"
	// Pause sends SIGSTOP at Start and SIGCONT at End.
	Pause Kind = "pause"
	// Throttle limits the process to Ratio of one CPU (cgroup cpu.max) from
	// Start to End.
	Throttle Kind = "throttle"
	// Freeze freezes the process's cgroup (cgroup freezer) from Start to
	// End.
	Freeze Kind = "freeze"
)

// Node faults act on the whole guest of each node in Fault.Nodes.
const (
	// PowerCut cuts the node off at Start, as if its power failed, and
	// boots it again at End; it is down in between.
	PowerCut Kind = "power-cut"
	// VMFreeze holds the node's virtual machine from Start to End, then steps
	// its CLOCK_REALTIME forward by the time it was frozen, as a VM
	// migration or a long GC-like stall would.
	VMFreeze Kind = "vm-freeze"
)

// Clock faults act on the clock of each node in Fault.Nodes.
const (
	// ClockJump steps CLOCK_REALTIME by Offset at Start and back at End.
	ClockJump Kind = "clock-jump"
	// ClockStrobe steps the clock by +Offset and -Offset in turn, every
	// Period, from Start to End, where it is left where it started.
	ClockStrobe Kind = "clock-strobe"
	// ClockSkew sets the clock's frequency offset (adjtimex) to PPM from Start
	// and back to 0 at End.
	ClockSkew Kind = "clock-skew"
)

// Classes of kinds, as returned by Kind.Class.
const (
	ClassNetwork = "network"
	ClassProcess = "process"
	ClassNode    = "node"
	ClassClock   = "clock"
)

// kinds is in the order Kinds documents.
var kinds = []Kind{
	Partition, Loss, Delay, Duplicate, Reorder, Corrupt, Clog,
	Kill, Pause, Throttle, Freeze,
	PowerCut, VMFreeze,
	ClockJump, ClockStrobe, ClockSkew,
}

// Kinds returns every kind, by class (network, process, node, clock) and
// within a class in the order of their constants: partition, loss, delay,
// duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze,
// power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew. Policies draw
// faults kind by kind in this order.
func Kinds() []Kind {
	return append([]Kind(nil), kinds...)
}

// Class returns "network", "process", "node" or "clock"; "" for a string
// that is not a kind.
func (k Kind) Class() string {
	switch k {
	case Partition, Loss, Delay, Duplicate, Reorder, Corrupt, Clog:
		return ClassNetwork
	case Kill, Pause, Throttle, Freeze:
		return ClassProcess
	case PowerCut, VMFreeze:
		return ClassNode
	case ClockJump, ClockStrobe, ClockSkew:
		return ClassClock
	}
	return ""
}

// valid reports whether k is one of Kinds().
func (k Kind) valid() bool { return k.Class() != "" }

// link reports whether k acts on links between Nodes and To.
func (k Kind) link() bool { return k.Class() == ClassNetwork && k != Partition }

// index is k's position in Kinds(); -1 if k is not a kind.
func (k Kind) index() int {
	for i, x := range kinds {
		if x == k {
			return i
		}
	}
	return -1
}

// params are the keys of a hand-written fault, after kind, at, for and the
// targets, that apply to k, in the order the schema lists them.
func (k Kind) params() []string {
	switch k {
	case Partition:
		return []string{"oneway"}
	case Loss, Duplicate, Corrupt:
		return []string{"oneway", "percent"}
	case Reorder:
		return []string{"oneway", "percent", "delay"}
	case Delay:
		return []string{"oneway", "delay", "jitter"}
	case Clog:
		return []string{"oneway", "rate"}
	case Kill, Pause, Freeze:
		return []string{"proc"}
	case Throttle:
		return []string{"proc", "ratio"}
	case ClockJump:
		return []string{"offset"}
	case ClockStrobe:
		return []string{"offset", "period"}
	case ClockSkew:
		return []string{"ppm"}
	}
	return nil
}

// required are the params a hand-written fault of kind k must give.
func (k Kind) required() []string {
	switch k {
	case Loss, Duplicate, Corrupt, Reorder:
		return []string{"percent"}
	case Delay:
		return []string{"delay"}
	case Clog:
		return []string{"rate"}
	case Throttle:
		return []string{"ratio"}
	case ClockJump:
		return []string{"offset"}
	case ClockStrobe:
		return []string{"offset", "period"}
	case ClockSkew:
		return []string{"ppm"}
	}
	return nil
}

// targets are the target keys that apply to k.
func (k Kind) targets() []string {
	switch {
	case k == Partition:
		return []string{"groups", "mode"}
	case k.link():
		return []string{"nodes", "to"}
	}
	return []string{"nodes"}
}
