package scheduler

import (
	"math"
	"time"
)

// Clock maps epoch numbers to virtual time. EpochNS must be non-zero.
type Clock struct{ EpochNS uint64 }

// Start returns the virtual time at which epoch begins: epoch*EpochNS. It
// saturates at the largest time.Duration (about 292 years) instead of
// wrapping, so time never runs backwards.
func (c Clock) Start(epoch uint64) time.Duration {
	if c.EpochNS != 0 && epoch > math.MaxInt64/c.EpochNS {
		return math.MaxInt64
	}
	return time.Duration(epoch * c.EpochNS)
}

// EpochAt returns the epoch containing virtual time virtual, i.e.
// floor(virtual/EpochNS). Times before the run start map to epoch 0.
func (c Clock) EpochAt(virtual time.Duration) uint64 {
	if virtual < 0 {
		return 0
	}
	return uint64(virtual) / c.EpochNS
}
