// Package vmm runs one QEMU process: its command line, its lifecycle, its
// QMP monitor and its barrier socket.
//
// A Machine's flags are the deterministic set measured in DESIGN.md: TCG
// with icount (shift=0, sleep=off, align=off), a virtual RTC with a fixed
// base, a fixed -seed, no RDRAND/RDSEED, PVH boot of an uncompressed vmlinux
// through qboot. Nothing on the command line depends on the run seed: run
// inputs cross at barriers, through the shared page.
package vmm

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/detvm/detvm/wire"
)

// DefaultAppend is the kernel command line (DESIGN.md, "Guests"). The
// cmdline feeds the kernel entropy pool, so any change to it changes every
// trace hash. rodata=off skips the W+X page-table walk, 120 ms of virtual
// boot time (docs/benchmarks.md); a test guest gains nothing from it.
const DefaultAppend = "console=ttyS0 quiet mitigations=off nolapic_timer no_timer_check " +
	"cryptomgr.notests tsc=reliable hpet=disable init_on_alloc=0 rodata=off panic=-1 rdinit=/init"

// DefaultRTCBase is the guest's wall clock at power-on. Fixed, so that
// CLOCK_REALTIME in the guest is a function of virtual time only.
const DefaultRTCBase = "2026-01-01T00:00:00"

// File descriptors the QEMU process inherits (ExtraFiles start at 3).
const (
	fdQMP     = 3
	fdBarrier = 4
)

// Config describes one QEMU guest. Paths should be absolute.
type Config struct {
	Name      string // node name, used in errors
	QEMU      string // qemu-system-x86_64
	BIOS      string // qboot.rom
	Kernel    string // uncompressed vmlinux (PVH entry)
	Initrd    string // initramfs (newc cpio)
	Append    string // kernel command line; DefaultAppend when empty
	MemoryMiB int
	Plugin    string // barrier plugin .so; unused with HoldNS
	// HoldNS > 0 makes QEMU hold the guest at every multiple of HoldNS of
	// virtual time (detvm's QEMU patch 0004) instead of the plugin's
	// barrier instruction, and adds the guest's wake port: a second serial
	// port (ttyS1) on which Machine.Wake puts a newline.
	HoldNS  uint64
	Shared  string // file backing the shared page (wire.Size bytes)
	Console string // file that receives the serial console
	RTCBase string // DefaultRTCBase when empty
	// Disk is the file backing the guest's persistent disk, an NVDIMM
	// (DESIGN.md, "Disks") of DiskBytes bytes; "" for none. The guest
	// sees /dev/pmem0. QEMU maps the file shared, so what the guest's
	// kernel has written to the disk is in the file, and what is still in
	// its page cache is not: a reset loses it, like a power cut.
	//
	// Start prepares the file: a booting machine's becomes a copy of
	// DiskImage (if set; else the file is used as it is), an Incoming
	// machine's is zeroed, since a load writes only the pages that were
	// not zero when saved (mapped-ram).
	Disk      string
	DiskBytes int64
	DiskImage string
	// Incoming starts QEMU waiting for a migration (Machine.Load) instead
	// of booting: the restore half of a snapshot.
	Incoming bool
}

// Validate reports the first problem with c, naming the field.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("vmm: config: Name is empty")
	}
	for _, f := range []struct{ name, path string }{
		{"QEMU", c.QEMU}, {"BIOS", c.BIOS}, {"Kernel", c.Kernel}, {"Initrd", c.Initrd}, {"Plugin", c.Plugin},
	} {
		if f.name == "Plugin" && c.HoldNS > 0 {
			continue
		}
		if f.path == "" {
			return fmt.Errorf("vmm: %s: config: %s is empty", c.Name, f.name)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("vmm: %s: config: %s: %w", c.Name, f.name, err)
		}
	}
	if c.Shared == "" || c.Console == "" {
		return fmt.Errorf("vmm: %s: config: Shared and Console paths are required", c.Name)
	}
	if c.MemoryMiB < 64 || c.MemoryMiB > 16384 {
		return fmt.Errorf("vmm: %s: config: MemoryMiB %d out of range 64..16384", c.Name, c.MemoryMiB)
	}
	return c.validateDisk()
}

// CommandLine returns QEMU's argv, argv[0] included. It is a pure function
// of c, so it can be golden-tested and recorded in a replay bundle.
func (c *Config) CommandLine() []string {
	args := append(c.machine(true),
		"-object", "memory-backend-file,id=shared,share=on,mem-path="+c.Shared+",size="+strconv.Itoa(wire.Size),
		// master=on: without it QEMU refuses to migrate the device.
		"-device", "ivshmem-plain,memdev=shared,master=on",
		"-chardev", "socket,id=qmp,fd="+strconv.Itoa(fdQMP),
		"-mon", "chardev=qmp,mode=control",
	)
	if c.HoldNS > 0 {
		// The wake port: QEMU writes into it only at a hold.
		args = append(args, "-chardev", "null,id=detvm-wake", "-serial", "chardev:detvm-wake")
	} else {
		args = append(args, "-plugin", c.Plugin+",fd="+strconv.Itoa(fdBarrier))
	}
	if c.Disk != "" {
		// No label area (label-size): the guest sees one raw pmem
		// namespace, /dev/pmem0, the size of the file. No pmem=on: that
		// is about the host's own persistence (MAP_SYNC), and a power cut
		// here is a guest reset, which never loses what reached the file.
		args = append(args,
			"-object", "memory-backend-file,id=disk0,share=on,mem-path="+c.Disk+",size="+strconv.FormatInt(c.DiskBytes, 10),
			"-device", "nvdimm,memdev=disk0,id=nvdimm0",
		)
	}
	if c.Incoming {
		args = append(args, "-incoming", "defer")
	}
	return args
}

// Env is what QEMU's environment needs besides the controller's: the hold
// (see HoldNS) is configured there, not on the command line.
func (c *Config) Env() []string {
	if c.HoldNS == 0 {
		return nil
	}
	return []string{"DETVM_HOLD_FD=" + strconv.Itoa(fdBarrier), "DETVM_HOLD_NS=" + strconv.FormatUint(c.HoldNS, 10)}
}

// BareCommandLine is the same machine without detvm's devices (shared page,
// QMP, barrier plugin), and optionally without icount: for measuring what
// the kernel itself costs (`detvm bench kernel`). Never for runs.
func (c *Config) BareCommandLine(icount bool) []string { return c.machine(icount) }

// machine is the guest hardware, firmware, kernel and console.
func (c *Config) machine(icount bool) []string {
	appendLine := c.Append
	if appendLine == "" {
		appendLine = DefaultAppend
	}
	rtc := c.RTCBase
	if rtc == "" {
		rtc = DefaultRTCBase
	}
	machine, mem := "pc,accel=tcg", strconv.Itoa(c.MemoryMiB)
	if c.Disk != "" {
		// An NVDIMM is a memory device: it needs the machine option, a
		// slot and room above the RAM. A disk-less guest keeps the
		// command line it always had (replay bundles record it).
		machine += ",nvdimm=on"
		mem += "M,slots=1,maxmem=" + strconv.FormatInt(int64(c.MemoryMiB)+c.DiskBytes>>20, 10) + "M"
	}
	args := []string{
		c.QEMU,
		"-name", "guest=" + c.Name,
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", machine,
		"-cpu", "max,-rdrand,-rdseed",
		"-smp", "1",
		"-m", mem,
	}
	if icount {
		args = append(args, "-icount", "shift=0,sleep=off,align=off")
	}
	return append(args,
		"-rtc", "clock=vm,base="+rtc,
		"-seed", "0",
		"-bios", c.BIOS,
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", appendLine,
		"-chardev", "file,id=console,path="+c.Console,
		"-serial", "chardev:console",
	)
}
