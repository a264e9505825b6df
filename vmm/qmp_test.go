package vmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQEMU speaks just enough QMP: a greeting, then answers commands from
// a table, after emitting many events nobody reads.
func fakeQEMU(t *testing.T, conn net.Conn, events int) {
	t.Helper()
	go func() {
		defer conn.Close()
		w := bufio.NewWriter(conn)
		w.WriteString(`{"QMP": {"version": {"qemu": {"major": 10}}, "capabilities": []}}` + "\n")
		w.Flush()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var cmd struct {
				Execute string `json:"execute"`
				ID      string `json:"id"`
			}
			json.Unmarshal(line, &cmd)
			for i := 0; i < events; i++ {
				w.WriteString(`{"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\n")
			}
			switch cmd.Execute {
			case "hang":
				continue
			case "big":
				w.WriteString(`{"return": "` + strings.Repeat("x", 200<<10) + `", "id": "` + cmd.ID + `"}` + "\n")
			case "bad":
				w.WriteString(`{"error": {"class": "CommandNotFound", "desc": "no"}, "id": "` + cmd.ID + `"}` + "\n")
			default:
				w.WriteString(`{"return": {}, "id": "` + cmd.ID + `"}` + "\n")
			}
			w.Flush()
		}
	}()
}

func TestMonitor(t *testing.T) {
	host, guest := net.Pipe()
	fakeQEMU(t, guest, 1000) // 1000 unread events per command must not block replies
	m := NewMonitor(host)
	if err := m.Connect(); err != nil {
		t.Fatal(err)
	}
	defer m.Disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ret, err := m.Execute(ctx, "big", nil)
	if err != nil || len(ret) < 200<<10 {
		t.Fatalf("large reply (past go-qemu's 64 KiB line limit): %d bytes, %v", len(ret), err)
	}
	_, err = m.Execute(ctx, "bad", nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("error class lost: %v", err)
	}
	out, err := m.Run([]byte(`{"execute":"query-status"}`))
	if err != nil || string(out) != `{"return":{}}` {
		t.Fatalf("Run = %s, %v", out, err)
	}
	evs, _ := m.Events(ctx)
	select {
	case ev := <-evs:
		if ev.Event != "RESUME" || ev.Timestamp.Microseconds != 2 {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
}

func TestMonitorClosed(t *testing.T) {
	host, guest := net.Pipe()
	fakeQEMU(t, guest, 0)
	m := NewMonitor(host)
	if err := m.Connect(); err != nil {
		t.Fatal(err)
	}
	wait, err := m.Send("hang", nil)
	if err != nil {
		t.Fatal(err)
	}
	guest.Close()
	host.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := wait(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait after close = %v, want a closed-connection error", err)
	}
}
