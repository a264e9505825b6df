//go:build linux

package agent

import (
	"fmt"
	"math"
	"os"
	"strings"
)

// Every process the agent starts lives in its own cgroup v2,
// /sys/fs/cgroup/detvm/<name>, so that faults can limit its CPU (cpu.max)
// and freeze it (cgroup.freeze) without touching the agent, which stays in
// the root cgroup with its real-time epoch thread.
//
// These are a handful of file writes done here rather than with
// github.com/containerd/cgroups/v3/cgroup2. That package builds static, but
// it links D-Bus, systemd, eBPF, protobuf and logrus into PID 1: the agent
// grew from 4.3 MB to 10.7 MB (measured with -trimpath), which every guest
// image carries and every boot unpacks, and protobuf registers its
// descriptors in init at every boot. Its Manager.Freeze also polls
// cgroup.events with a sleep until the kernel reports the freeze complete,
// with no bound, and the freeze runs on the epoch thread, which must always
// reach its next barrier.
const (
	cgroupRoot  = "/sys/fs/cgroup"
	cgroupDetvm = cgroupRoot + "/detvm"
	// cpuPeriod is cpu.max's period in µs, the kernel's default.
	cpuPeriod = 100000
	// minQuota is the kernel's smallest cpu.max quota in µs (1 ms).
	minQuota = 1000
)

// setupCgroups prepares detvm's subtree of the cgroup2 hierarchy that
// mountAll mounted, with the cpu controller enabled down to the processes'
// cgroups. The freezer needs no controller.
func setupCgroups() error {
	if err := os.WriteFile(cgroupRoot+"/cgroup.subtree_control", []byte("+cpu"), 0); err != nil {
		return fmt.Errorf("enable cpu controller: %w", err)
	}
	if err := os.Mkdir(cgroupDetvm, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	if err := os.WriteFile(cgroupDetvm+"/cgroup.subtree_control", []byte("+cpu"), 0); err != nil {
		return fmt.Errorf("enable cpu controller in %s: %w", cgroupDetvm, err)
	}
	return nil
}

// makeCgroup creates the cgroup of the process called name and returns its
// directory, "" on failure.
func makeCgroup(name string) (string, error) {
	dir := cgroupDetvm + "/" + cgroupName(name)
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return "", err
	}
	return dir, nil
}

// cgroupName maps a process name to a directory name, one to one: letters,
// digits, '-' and '_' stay, any other byte becomes %xx. So no name can
// escape the directory ("/", ".."), and none can collide with a cgroup's
// control files, whose names all contain a '.'.
func cgroupName(name string) string {
	if name == "" {
		return "%" // not a valid escape, so no other name maps to it
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return b.String()
}

// cpuMax is the cpu.max line that limits a cgroup to ratio of one CPU:
// "quota period" in µs, or "max period" for no limit.
func cpuMax(ratio float64) (string, error) {
	if !(ratio > 0 && ratio <= 1) || math.Round(ratio*cpuPeriod) < minQuota {
		return "", fmt.Errorf("ratio not in [0.01, 1]")
	}
	if ratio == 1 {
		return fmt.Sprintf("max %d", cpuPeriod), nil
	}
	return fmt.Sprintf("%d %d", int64(math.Round(ratio*cpuPeriod)), cpuPeriod), nil
}
