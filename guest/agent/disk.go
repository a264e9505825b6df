//go:build linux

package agent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// diskWaitNS bounds, in virtual time, the wait for the disk's block device.
// It appears within a few ms of loading nd_pmem: libnvdimm registers its
// devices from a kernel worker, and devtmpfs creates the node after that.
const diskWaitNS = 10e9

// mountDisk mounts the node's persistent disk, if it has one (d non-nil):
// it waits for the block device, creates the mount point and mounts the
// ext4 file system the controller formatted. Without DAX, so writes go
// through the page cache: what a process has not synced is lost when the
// guest is reset, like in a power cut; what it has synced is on the
// NVDIMM and survives. After a reset ext4 replays its journal here.
//
// The wait spins with sched_yield rather than sleeping: the vCPU must not
// halt before the idle spinner runs (DESIGN.md, "Second spike"), and
// yielding lets the kernel worker that creates the device run.
func mountDisk(d *wire.Disk) error {
	if d == nil {
		return nil
	}
	deadline := monoNS() + diskWaitNS
	for {
		var st unix.Stat_t
		err := unix.Stat(d.Dev, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			break
		}
		if monoNS() > deadline {
			if err == nil {
				err = fmt.Errorf("mode %#o", st.Mode)
			}
			return fmt.Errorf("disk: %s not a block device after %d s (virtual): %w; are the nfit and nd_pmem modules in the image and the nvdimm on QEMU's command line?",
				d.Dev, uint64(diskWaitNS/1e9), err)
		}
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
	if err := os.MkdirAll(d.Mount, 0o755); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	// dax=never: with DAX, file writes would bypass the page cache and
	// land on the NVDIMM at once, and there would be nothing to lose.
	if err := unix.Mount(d.Dev, d.Mount, "ext4", 0, "dax=never"); err != nil {
		return fmt.Errorf("disk: mount %s (ext4) on %s: %w", d.Dev, d.Mount, err)
	}
	return nil
}
