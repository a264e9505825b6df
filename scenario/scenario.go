// Package scenario reads the YAML files in which a user describes a detvm
// test: which programs run on which guest nodes, for how long in virtual
// time, and what else the guests need.
//
// The package is pure: it reads the scenario file and stats the host paths
// the file names, and nothing else. Its errors are meant to be shown to a
// user as they are: each is one line naming the file, the line, the field,
// the problem and a fix (see [Error]).
package scenario

import (
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/detvm/detvm/faults"
)

// Defaults and limits of scenario values. They are exported so that the CLI
// and the documentation can quote them instead of repeating them.
const (
	DefaultSeed   uint64 = 1
	DefaultEpoch         = time.Millisecond
	MinEpoch             = 100 * time.Microsecond
	MaxEpoch             = 100 * time.Millisecond
	DefaultMemory        = 256  // MiB
	MinMemory            = 64   // MiB
	MaxMemory            = 4096 // MiB
	MaxCount             = 64   // copies of one node
	// A node's disk (Node.Disk): its size in bytes is a multiple of
	// DiskAlign between MinDisk and MaxDisk.
	DefaultDiskSize = 64 << 20
	MinDisk         = 16 << 20
	MaxDisk         = 4 << 30
	DiskAlign       = 2 << 20 // the NVDIMM's section size
	// DefaultDiskMount is where the guest finds its disk unless disk.mount
	// says otherwise.
	DefaultDiskMount = "/data"
	// DefaultSubnet is the guest network unless network.subnet says
	// otherwise.
	DefaultSubnet = "10.89.0.0/24"
	MinSubnetBits = 8
	MaxSubnetBits = 29
	// SidecarName is the name of the sidecar, which no node may have.
	SidecarName = "sidecar"
)

// Idle modes (Scenario.Idle).
const (
	IdleSpin = "spin"
	IdleWarp = "warp"
)

// Scenario is one test run: a set of guests, the nodes and an optional
// sidecar, started together on one virtual IPv4 network and run in
// lock-step for Duration of virtual time.
type Scenario struct {
	// Name identifies the scenario in output. It defaults to the file's base
	// name without its .yaml or .yml extension.
	Name string
	// Seed feeds every source of randomness in the run; the CLI may
	// override it. Default 1.
	Seed uint64
	// Idle is how idle guests pass time: IdleWarp (guests halt and QEMU
	// warps to the next timer; needs detvm's patched QEMU, see
	// docs/limits.md) or IdleSpin (an idle-priority spinner keeps the vCPU
	// from halting; safe on any QEMU, but idle time costs as much as work).
	// "" lets the run choose: warp when the patched QEMU is present, else
	// spin with a warning (cluster.Tools.IdleMode); the run records the
	// mode it used. The CLI may override it.
	Idle string
	// Duration is the virtual-time limit of the run. Required, > 0.
	Duration time.Duration
	// Epoch is the length of one lock-step epoch, between MinEpoch and
	// MaxEpoch. Default 1ms. It is written as network.epoch or, as before
	// v1, as the top-level epoch.
	Epoch time.Duration
	// Subnet is the guests' IPv4 network: a network address with a prefix
	// length between MinSubnetBits and MaxSubnetBits. Its first address
	// after the network address is the gateway's (see Gateway); the guests
	// follow (see Node.Addr). Default DefaultSubnet.
	Subnet netip.Prefix
	// Nodes lists the nodes, at least one, in the order written, a node
	// written with count N expanded in place into N nodes.
	Nodes []Node
	// Sidecar is the guest that runs the test workload; nil if the
	// scenario has none. Guests lists it after Nodes.
	Sidecar *Node
	// Faults is the fault spec of the faults: section; nil for none.
	Faults *faults.Spec
	// Check is what the controller checks after the run (check:); the
	// zero value checks nothing.
	Check Check
	// Path is the absolute path of the file Load read; "" after Parse.
	Path string
	// Dir is the directory of Path, against which relative host paths in the
	// scenario were resolved; "" after Parse.
	Dir string
}

// Node is one guest machine and the programs it runs.
type Node struct {
	// Name is unique within the scenario: 1 to 32 characters of a-z, 0-9
	// and '-', starting with a letter. A node written with count N is
	// named <name>-1 to <name>-N. The sidecar's is SidecarName.
	Name string
	// Sidecar is true for Scenario.Sidecar only.
	Sidecar bool
	// Addr is the guest's IPv4 address in Scenario.Subnet: the i-th guest
	// of Scenario.Guests, from 0, has the subnet's address + 2 + i.
	Addr netip.Addr
	// Binary is the host path of the node's main program. Load makes it
	// absolute, resolving a relative path against Scenario.Dir. It is
	// never empty for a node; a sidecar without one only runs Commands.
	Binary string
	// Args are the main program's arguments, without argv[0]. NodeVar in
	// them, as in Env values and in commands' Run and Env values, has been
	// replaced by Name.
	Args []string
	// Env is the main program's extra environment, in the order written.
	Env []EnvVar
	// Daemon means the main program runs until the end of the run and the
	// node does not wait for it to exit.
	Daemon bool
	// Memory is the guest's RAM in MiB, between MinMemory and MaxMemory.
	// Default 256.
	Memory int
	// Files are extra host files copied into the guest.
	Files []File
	// Include lists extra host programs copied into the guest together with
	// their shared libraries. Load makes the paths absolute.
	Include []string
	// Commands run one after another once the main program has started.
	Commands []Command
	// Disk is the guest's persistent disk; nil for none.
	Disk *Disk
	// Test is the test the sidecar runs once its commands are done
	// (test.go); nil for none, and always nil for a node.
	Test *Test
}

// Disk is a guest's persistent disk: an ext4 file system on an emulated
// NVDIMM, empty at the start of every run, mounted before any of the
// guest's programs starts. Writes a program has synced (fsync, sync)
// survive a power cut; others may be lost, as on a real disk.
type Disk struct {
	// Size in bytes: a multiple of DiskAlign between MinDisk and MaxDisk.
	// Default DefaultDiskSize.
	Size int64
	// Mount is the absolute, clean guest directory the disk is mounted
	// on, not / and not under /proc, /sys or /dev. Default
	// DefaultDiskMount.
	Mount string
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name, Value string
}

// File is a host file to copy into a guest.
type File struct {
	// Src is the host path; Load makes it absolute and checks that it is a
	// regular file.
	Src string
	// Dst is the absolute, clean path of the copy in the guest.
	Dst string
	// Mode holds the permission bits of the copy; 0 keeps the host file's.
	Mode os.FileMode
}

// Command is a program a node runs after its main program has started.
type Command struct {
	// Name is unique within the node; it defaults to "cmd-N" for the N-th
	// command, counting from 1.
	Name string
	// Run is the argv, never empty. An absolute Run[0] is a path in the
	// guest and is left alone; a relative one names a host program next to
	// the scenario, which Load resolves and checks like Node.Binary.
	Run []string
	// After is the virtual delay between the previous command finishing (or
	// the main program starting, for the first command) and this one
	// starting.
	After time.Duration
	// Env is the command's extra environment, in the order written.
	Env []EnvVar
}

// Load reads the scenario file at path, checks it like Parse, and then
// resolves its host paths against the file's directory: each Node.Binary
// and relative Command.Run[0] must be an executable regular file, each
// Include and File.Src a regular file. The path as given is the file name
// used in error messages, so they read the way the user typed it.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, readError(path, err)
	}
	p := newParser(path)
	s := p.parse(data)
	s.Path = abs
	s.Dir = filepath.Dir(abs)
	p.checkHostPaths(s.Dir)
	p.checkTest(s, s.Dir)
	p.expand(s)
	p.checkFaults(s)
	if err := p.first(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse checks the YAML syntax, the schema and the values of a scenario
// without touching the file system; host paths are returned as written.
// name is the file name used in error messages and for the default
// Scenario.Name.
func Parse(data []byte, name string) (*Scenario, error) {
	p := newParser(name)
	s := p.parse(data)
	p.expand(s)
	p.checkFaults(s)
	if err := p.first(); err != nil {
		return nil, err
	}
	return s, nil
}
