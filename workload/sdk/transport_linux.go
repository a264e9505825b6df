//go:build linux

package sdk

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ackTimeout bounds how long a call waits for the agent's reply. In a guest
// it is virtual time, so waiting is as deterministic as the rest.
const ackTimeout = time.Second

// unixgram is a datagram socket to the agent, bound to an autobind
// (abstract) address so that the agent can reply. One call at a time: a
// reply answers the message just sent.
type unixgram struct {
	mu   sync.Mutex
	fd   int
	to   unix.SockaddrUnix
	rbuf [512]byte
}

func dial(path string) (transport, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// An empty name autobinds: the kernel picks a unique abstract address.
	if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(ackTimeout))
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	return &unixgram{fd: fd, to: unix.SockaddrUnix{Name: path}}, nil
}

func (u *unixgram) send(b []byte) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	// A reply that came after an earlier call gave up waiting would
	// otherwise answer this one.
	for {
		if _, _, err := unix.Recvfrom(u.fd, u.rbuf[:], unix.MSG_DONTWAIT); err != nil {
			break
		}
	}
	for {
		err := unix.Sendto(u.fd, b, 0, &u.to)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	for {
		n, _, err := unix.Recvfrom(u.fd, u.rbuf[:], 0)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EAGAIN):
			return "", nil // sent; no reply in time
		case err != nil:
			return "", nil // sent; the reply is a courtesy
		}
		return string(u.rbuf[:n]), nil
	}
}
