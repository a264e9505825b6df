package loadgen

import "golang.org/x/sys/unix"

// monotonic is CLOCK_MONOTONIC in nanoseconds: in a detvm guest, virtual
// time since boot, the clock of the guest's output.log and events.jsonl.
// Clock faults never strike the sidecar, which runs the workload.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("loadgen: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}
