// Package faults is detvm's fault model: what can go wrong in a run, when,
// and to whom. It is a pure core in the manner of the scheduler package: it
// reads a YAML file in Load and nothing else, owns no goroutines, reads no
// clock, and every random choice comes from a seeded PCG stream, so that a
// run's faults are a function of its spec, topology, length and seeds.
//
// # From spec to actions
//
// A [Spec] is what a scenario's faults: key holds, or a file given to
// `detvm run --faults`; [ParseSpec] and [Load] read it, [Builtin] supplies
// "random" and "none". [Spec.Compile] turns it, for a [Topology], an epoch
// length, a run length and the run's seed [Segment]s, into a [Schedule]:
// [Fault] values whose targets are node indices and whose random choices
// are made, active from their Start epoch up to, not including, their End
// epoch. The cluster driver asks the schedule which faults start and end at
// each epoch boundary, performs the process, node and clock faults itself,
// and hands the active network faults to [NetRules], which compiles them
// into the virtual switch's [scheduler.Rule] table.
//
// # Hand-written faults
//
// A list, each item one fault:
//
//	faults:
//	  - {kind: partition, at: 2s, for: 1s, groups: [[n1], [n2, n3]]}
//	  - {kind: partition, at: 5s, for: 2s, mode: majorities-ring}
//	  - {kind: loss, at: 3s, for: 1s, nodes: [n2], to: [n3], oneway: true, percent: 30}
//	  - {kind: kill, at: 4s, for: 1s}
//
// kind is one of Kinds(); at is the start in virtual time (Go duration
// syntax); for is the length, or until the end of the run when left out. At
// is rounded down to an epoch and at+for up. nodes and to are node names
// (to left out: every other node, the sidecar included); groups are
// disjoint lists of names, at least two. The settings each kind takes are
// listed on its constant; those a kind does not take are refused. A process,
// node or clock fault without nodes strikes one node drawn from the seed,
// never the sidecar.
//
// A partition's mode draws its groups from the seed among all nodes but the
// sidecar: isolate (one node against the rest),
// halves, majority (a random minority cut off), majorities-ring (Jepsen's:
// every node sees a majority, no two the same one) and bridge (two halves
// joined by one node that sees both). The last two are expressed as
// overlapping groups — bridge as [A+b, B+b], the ring as one group per node
// of consecutive ring members — under the rule that a frame between two
// grouped nodes passes only if some group holds both.
//
// # Policies
//
// A mapping with policy: draws faults at random:
//
//	faults:
//	  policy:
//	    window: 1s          # draws are made per window of virtual time
//	    max_concurrent: 2   # faults active at once, at most
//	    quiet: 1s           # nothing starts this soon after a fault ends
//	    final_heal: 3s      # nothing is active in the run's last 3s
//	    min: 500ms          # a fault's length, drawn uniformly
//	    max: 3s
//	    rates: {partition: 0.2, kill: 0.1}  # new faults per virtual second
//	    params: {delay: {delay: 200ms}}     # fixed settings per kind
//
// Settings left out are those of the built-in "random" policy (see
// [Builtin]); rates, when given, list every kind to draw. policy: random
// and policy: none name the built-ins, as do the scalars faults: random and
// faults: none.
//
// Each window is cut into up to 64 equal slots; in each slot, a kind with
// rate r starts a candidate fault with probability r times the slot's
// length (at most 1), at an epoch drawn uniformly in the slot, so a kind
// has at most 64 candidates per window. Its length is drawn between min and
// max, whole epochs. Its settings are drawn in these ranges: loss,
// duplicate and reorder 10–50%, corrupt 1–10%, reorder holding 5–50ms,
// delay 5–100ms with jitter 0–delay (whole milliseconds), clog 10–100
// KiB/s, throttle 0.1–0.5, clock-jump ±1s–10min (whole seconds),
// clock-strobe 50ms–5s every 10–200ms (at least an epoch), clock-skew
// ±50–500 ppm. Its targets are never the sidecar: a link fault goes from
// one node to one other or to all other nodes but the sidecar, one-way a
// quarter of the time; a partition takes one of the modes above the nodes
// allow (one-way a quarter of the time for isolate, halves and majority);
// a process, node or clock fault strikes one node, a process fault its
// main program.
//
// The candidates of a window are then considered in start order, and one
// is kept only if fewer than max_concurrent faults are active when it
// starts, no fault ended less than quiet before it starts, it starts
// before the final heal (its end is clipped to it), and, for a process,
// node or clock fault, no such fault is active on the same node. Of two
// candidates that exclude each other the one that starts first wins, and
// of two starting in the same epoch the one of the kind earlier in
// Kinds(). A kind's rate is thus an upper bound on how often a run sees it.
//
// # Random streams and branches
//
// A run may branch: continued from a snapshot at epoch E with a new seed, it
// should repeat the original run before E and differ only after. Its
// segments say so: [{seed, 0}, {branch seed, E}]. Compile keeps that
// property by drawing each choice from a stream keyed by where it happens,
// seeded from the segment covering that place:
//
//   - Policy window w (epochs w*W to (w+1)*W, W the window in epochs,
//     counted from epoch 0) draws from
//     rand.NewPCG(seed, fnv64a("detvm-faults-v1" + le64(w))), with seed
//     that of the segment covering the window's first epoch. The window
//     stream first draws two numbers per kind, in Kinds() order, that seed
//     that kind's own PCG stream for the window, so a kind's candidates do
//     not depend on the other kinds' rates.
//   - Hand-written fault i (its index in the list) draws its random nodes
//     or mode from rand.NewPCG(seed, fnv64a("detvm-faults-v1/list" +
//     le64(i))), with seed that of the segment covering its Start.
//
// Because faults are admitted in start order and admission looks only at
// faults admitted before, a branch at E leaves every fault of the windows
// that start before E exactly as it was. A window that straddles E keeps the
// old seed, so it is the first window starting at or after E that changes;
// faults drawn before E may still be active after it, and the faults drawn
// after E are admitted in their light.
package faults
