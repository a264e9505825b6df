// Package scheduler is the deterministic core of detvm's virtual network: it
// decides which packet reaches which node, and in which epoch.
//
// Guests never talk to each other directly. At the barrier that ends an epoch
// the controller hands each node's outgoing packets to a [Switch] with
// [Switch.Send]; at the start of the next epoch it asks [Switch.Deliver] what
// is due and writes those frames into the receivers' rings. Because every
// guest is stopped while this happens, the only inputs are the epoch numbers,
// the packet bytes, and the fault table and seed the controller sets, so the
// outcome is a pure function of the run.
//
// The fault table ([Rule], [Switch.SetRules]) drops, loses, delays, jitters,
// duplicates, reorders, corrupts and rate-limits packets per (source,
// destination) link and epoch window; every matching rule applies. Its random
// choices are hashes of the seed ([Switch.SetSeed]) and of the packet they
// decide, not draws from a generator, so they need no state to snapshot and
// no packet's draws depend on any other packet's.
//
// The package follows the etcd-raft "pure core" discipline so that property
// holds by construction: no goroutines, no wall clock, no I/O except the pcap
// writer's caller-supplied io.Writer, and nothing that depends on map
// iteration order. Drivers own time and I/O; this package owns decisions.
package scheduler
