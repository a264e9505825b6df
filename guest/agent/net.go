//go:build linux

package agent

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/wire"
)

// setupNet creates the guest's TUN interface and configures it with
// netlink. The kernel's own TCP/IP stack runs on top of it, inside the
// deterministic guest; only whole IP packets cross to the controller.
func setupNet(n *wire.Net) (*os.File, error) {
	// IPv6 would add router solicitations and DAD probes to every trace
	// for nothing: the virtual network is IPv4.
	for _, k := range []string{"all", "default"} {
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun (is tun.ko loaded?): %w", err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], n.Dev)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
		f.Close()
		return nil, fmt.Errorf("TUNSETIFF %s: %w", n.Dev, e)
	}
	link, err := netlink.LinkByName(n.Dev)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Dev, err)
	}
	addr, err := netlink.ParseAddr(n.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s address %q: %w", n.Dev, n.Addr, err)
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return nil, fmt.Errorf("%s: add %s: %w", n.Dev, n.Addr, err)
	}
	if err := netlink.LinkSetMTU(link, n.MTU); err != nil {
		return nil, fmt.Errorf("%s: mtu %d: %w", n.Dev, n.MTU, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s up: %w", n.Dev, err)
	}
	return f, nil
}

// readTUN hands every packet the kernel sends to the publisher.
func (a *agent) readTUN() {
	buf := make([]byte, 65536)
	for {
		n, err := a.tun.Read(buf)
		if err != nil {
			a.logf("tun read: %v", err)
			return
		}
		a.mu.Lock()
		a.pendingTX = wire.AppendFrame(a.pendingTX, buf[:n])
		a.mu.Unlock()
		a.kick()
	}
}

// deliverRX hands the packets the controller delivered (taken by wakeWork)
// to the kernel.
func (a *agent) deliverRX(rx []byte) {
	if a.tun == nil || len(rx) == 0 {
		return
	}
	frames, err := wire.SplitFrames(rx)
	if err != nil {
		a.logf("rx: %v", err)
	}
	for _, f := range frames {
		if _, err := a.tun.Write(f); err != nil {
			a.logf("tun write: %v", err)
		}
	}
}
