//go:build linux

package sdk

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnixgramRoundTrip sends through a real socket to a stand-in agent
// that replies like the real one, and checks that a late reply does not
// answer the next message.
func TestUnixgramRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sdk")
	srv, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	tr, err := dial(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	go func() {
		buf := make([]byte, MaxMessage)
		for i := 0; ; i++ {
			n, from, err := unix.Recvfrom(srv, buf, 0)
			if err != nil {
				return
			}
			if i == 0 {
				// A stale reply first, as if to an earlier message.
				_ = unix.Sendto(srv, []byte("stale"), 0, from)
			}
			_ = unix.Sendto(srv, []byte("ok "+string(buf[:n])), 0, from)
			got <- string(buf[:n]) // after both replies are queued
		}
	}()
	r1, err := tr.send([]byte(`{"n":1}`))
	if err != nil || r1 != "stale" {
		t.Fatalf("first reply %q, %v", r1, err)
	}
	<-got
	r2, err := tr.send([]byte(`{"n":2}`))
	if err != nil || r2 != `ok {"n":2}` {
		t.Fatalf("second reply %q, %v (a stale reply answered it?)", r2, err)
	}
	if m := <-got; m != `{"n":2}` {
		t.Fatalf("received %q", m)
	}
}

func TestDialMissingSocket(t *testing.T) {
	tr, err := dial(filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err) // dialing only binds; sending fails
	}
	if _, err := tr.send([]byte(`{}`)); err == nil {
		t.Fatal("sent to a socket that does not exist")
	}
}
