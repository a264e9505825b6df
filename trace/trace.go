// Package trace computes a run's trace hash: a chain of per-epoch hashes
// over everything each guest showed the controller in that epoch (console
// bytes, agent events, its virtual time at the barrier). Two runs are the
// same run when their chains are equal; the first epoch where they differ
// is where they diverged (DESIGN.md §8). Pure: no I/O, no clock.
package trace

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Chain is the running hash. The zero value is the empty chain.
type Chain struct {
	h      [32]byte
	epochs uint64
}

// Guest is one guest's contribution to an epoch.
type Guest struct {
	Name    string
	MonoNS  uint64 // guest CLOCK_MONOTONIC at the barrier
	Console []byte // serial output since the previous barrier
	Events  []byte // encoded wire events since the previous barrier
}

// Add folds one epoch into the chain and returns that epoch's hash. Guests
// must come in a fixed order (the scenario's node order).
func (c *Chain) Add(epoch uint64, guests []Guest) [32]byte {
	s := sha256.New()
	s.Write(c.h[:])
	var n [8]byte
	put := func(v uint64) { binary.LittleEndian.PutUint64(n[:], v); s.Write(n[:]) }
	put(epoch)
	put(uint64(len(guests)))
	for _, g := range guests {
		put(uint64(len(g.Name)))
		s.Write([]byte(g.Name))
		put(g.MonoNS)
		put(uint64(len(g.Console)))
		s.Write(g.Console)
		put(uint64(len(g.Events)))
		s.Write(g.Events)
	}
	copy(c.h[:], s.Sum(nil))
	c.epochs++
	return c.h
}

// Sum is the hash of the chain so far, in hex.
func (c *Chain) Sum() string { return hex.EncodeToString(c.h[:]) }

// Epochs is how many epochs the chain holds.
func (c *Chain) Epochs() uint64 { return c.epochs }
