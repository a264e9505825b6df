package wire

// ConfigPath is where the controller puts the agent's configuration in the
// initramfs. It holds nothing run-specific (no seed) so that one image serves
// every seed; run inputs cross through the shared page at the first barrier.
const ConfigPath = "/detvm/config.json"

// Config tells the agent what one node runs.
type Config struct {
	Node    string   `json:"node"`
	EpochNS uint64   `json:"epoch_ns"`
	Modules []string `json:"modules,omitempty"` // guest paths of .ko files, loaded in order
	Env     []string `json:"env,omitempty"`     // KEY=VALUE for every process, before its own
	Net     *Net     `json:"net,omitempty"`     // nil: loopback only
	Disk    *Disk    `json:"disk,omitempty"`    // nil: no persistent disk
	Main    *Proc    `json:"main,omitempty"`    // nil: a guest that only runs Commands
	// Commands run one after another once Main has started.
	Commands []Proc `json:"commands,omitempty"`
	// Halt lets the vCPU halt when the guest idles (idle mode "warp", on
	// detvm's patched QEMU). False: the agent runs an idle spinner.
	Halt bool `json:"halt,omitempty"`
	// Hold: detvm's QEMU holds the guest at every epoch boundary of
	// virtual time and the controller wakes the agent through /dev/ttyS1
	// when it has something for it. False: the agent executes the barrier
	// instruction at every epoch boundary itself.
	Hold bool `json:"hold,omitempty"`
	// Test is run by the test composer once the Commands are done; nil:
	// none (wire/composer.go).
	Test *Test `json:"test,omitempty"`
}

// Proc is a process the agent starts.
type Proc struct {
	Name   string   `json:"name"`
	Argv   []string `json:"argv"`
	Env    []string `json:"env,omitempty"`
	Daemon bool     `json:"daemon,omitempty"` // not waited for: runs until the end
	// AfterNS is the virtual delay before starting: after Main started for
	// the first command, after the previous command exited for the others.
	AfterNS uint64 `json:"after_ns,omitempty"`
}

// Net is the guest's one network interface: a TUN device whose packets
// cross only through the shared page, at barriers.
type Net struct {
	Dev  string `json:"dev"`  // interface name, e.g. "eth0"
	Addr string `json:"addr"` // CIDR, e.g. "10.89.0.2/24"
	MTU  int    `json:"mtu"`
}

// Disk is the node's persistent disk: an NVDIMM holding an ext4 file
// system that the controller formatted, which the agent mounts before it
// starts any process (and again after every reboot).
type Disk struct {
	Dev   string `json:"dev"`   // block device, "/dev/pmem0"
	Mount string `json:"mount"` // absolute guest directory, created if missing
	Bytes int64  `json:"bytes"` // the device's size
	// Image is the digest of the disk's content at power-on
	// (images.DiskDigest). The agent does not use it: it is here so that
	// the node's image hash, which warm starts, snapshots and replay
	// compare, covers the disk as well.
	Image string `json:"image"`
}
