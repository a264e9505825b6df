package cluster

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

// BaseEnv is every guest process's environment before the scenario's own.
var BaseEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
}

// nodeImage assembles the initramfs of one node. Nothing in it depends on
// the seed, so one image serves every run of the scenario and its hash
// identifies what the guest executes.
//
// disk is the formatted image n's disk starts from (nodeDisk); its digest
// goes into the image, so that the image's hash covers the disk too.
func nodeImage(s *scenario.Scenario, n *scenario.Node, kern *images.Kernel, agent, busybox string, disk images.DiskImage) (*images.Initramfs, error) {
	img := images.NewInitramfs()
	if err := img.AddHostFile("/init", agent, 0o755); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := img.AddHostFile("/bin/busybox", busybox, 0o755); err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	img.AddSymlink("/bin/sh", "busybox")
	// The SDK's shell helper is the agent itself, run by this name
	// (docs/sdk.md).
	img.AddSymlink("/bin/detvm-sdk", "/init")
	img.AddFile("/etc/hosts", []byte(s.Hosts()), 0o644)
	img.AddFile("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	img.AddFile("/etc/group", []byte("root:x:0:\n"), 0o644)
	img.AddFile("/etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files\n"), 0o644)
	img.AddDir("/root", 0o700)

	tun, err := kern.ModuleBytes("tun")
	if err != nil {
		return nil, fmt.Errorf("kernel module tun: %w", err)
	}
	img.AddFile("/lib/modules/tun.ko", tun, 0o644)
	for _, inc := range n.Include {
		if err := img.AddBinary(images.GuestPath(inc), inc); err != nil {
			return nil, err
		}
	}
	for _, f := range n.Files {
		if err := img.AddHostFile(f.Dst, f.Src, f.Mode); err != nil {
			return nil, err
		}
	}
	cfg := wire.Config{
		Node:    n.Name,
		EpochNS: uint64(s.Epoch),
		Modules: []string{"/lib/modules/tun.ko"},
		Env:     append(append([]string(nil), BaseEnv...), "DETVM_NODE="+n.Name),
		Net:     &wire.Net{Dev: "eth0", Addr: netip.PrefixFrom(n.Addr, s.Subnet.Bits()).String(), MTU: 1500},
		Halt:    s.Idle == scenario.IdleWarp,
		Hold:    s.Idle == scenario.IdleWarp, // runner.hold
	}
	if n.Binary != "" {
		bin := images.GuestPath(n.Binary)
		if err := img.AddBinary(bin, n.Binary); err != nil {
			return nil, err
		}
		cfg.Main = &wire.Proc{Name: mainName(n), Argv: append([]string{bin}, n.Args...), Env: envList(n.Env), Daemon: n.Daemon}
	}
	for _, c := range n.Commands {
		argv := append([]string(nil), c.Run...)
		if g := images.GuestPath(argv[0]); !img.Has(g) {
			// Not in the guest yet (binary, include, busybox): a host
			// program of that path comes along with its libraries.
			if _, err := os.Stat(argv[0]); err == nil {
				if err := img.AddBinary(g, argv[0]); err != nil {
					return nil, err
				}
				argv[0] = g
			}
		} else {
			argv[0] = g
		}
		cfg.Commands = append(cfg.Commands, wire.Proc{Name: c.Name, Argv: argv, Env: envList(c.Env), AfterNS: uint64(c.After)})
	}
	if err := addTest(img, &cfg, n); err != nil { // composer.go
		return nil, err
	}
	if err := addDisk(img, &cfg, n, kern, disk); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	img.AddFile(wire.ConfigPath, b, 0o644)
	return img, nil
}

// mainName names a node's main process after its program.
func mainName(n *scenario.Node) string { return filepath.Base(n.Binary) }

func envList(env []scenario.EnvVar) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		out = append(out, e.Name+"="+e.Value)
	}
	return out
}
