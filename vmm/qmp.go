package vmm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/digitalocean/go-qemu/qmp"
)

// Monitor is a QMP client over an already-connected socket.
//
// We write our own rather than use go-qemu's SocketMonitor because that one
// (a) can only dial an address, while detvm hands QEMU one end of a
// socketpair so no socket file ever exists outside the run; (b) reads with a
// bufio.Scanner whose 64 KiB line limit breaks on large replies; (c) delivers
// events on an unbuffered channel that deadlocks a reader that stops
// listening; (d) drops the QMP error class. go-qemu's types (qmp.Command,
// qmp.Event) and its qmp.Monitor interface stay at the seam.
type Monitor struct {
	conn net.Conn

	mu      sync.Mutex
	nextID  int
	waiting map[string]chan response
	events  []qmp.Event // unbounded: QEMU never blocks on us
	evWake  chan struct{}
	err     error // set once the reader stops
	stopped chan struct{}
}

var _ qmp.Monitor = (*Monitor)(nil)

// Error is a QMP error reply.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

type response struct {
	ID     string          `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
	Event  string          `json:"event"`
	QMP    json.RawMessage `json:"QMP"`
}

// NewMonitor wraps a connection; Connect performs the handshake.
func NewMonitor(conn net.Conn) *Monitor {
	return &Monitor{conn: conn, waiting: map[string]chan response{}, evWake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// Connect reads the greeting, starts the reader and negotiates capabilities.
func (m *Monitor) Connect() error {
	r := bufio.NewReader(m.conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	var g response
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return fmt.Errorf("qmp greeting: unexpected %q", line)
	}
	go m.read(r)
	_, err = m.Execute(context.Background(), "qmp_capabilities", nil)
	return err
}

func (m *Monitor) read(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = r.ReadBytes('\n') // no line limit
		if err != nil {
			break
		}
		var resp response
		if jerr := json.Unmarshal(line, &resp); jerr != nil {
			continue
		}
		m.mu.Lock()
		if resp.Event != "" {
			var ev qmp.Event
			if json.Unmarshal(line, &ev) == nil {
				m.events = append(m.events, ev)
				select {
				case m.evWake <- struct{}{}:
				default:
				}
			}
		} else if c, ok := m.waiting[resp.ID]; ok {
			delete(m.waiting, resp.ID)
			c <- resp
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.err = fmt.Errorf("qmp: connection closed: %w", err)
	for id, c := range m.waiting {
		close(c)
		delete(m.waiting, id)
	}
	m.mu.Unlock()
	close(m.stopped)
}

// Send issues a command and returns at once; wait blocks for its reply. The
// split exists for commands that pause the vCPU (stop, system_reset,
// migrate): they cannot complete while the vCPU is held in a barrier, so the
// caller sends, releases the barrier, then waits (DESIGN.md).
func (m *Monitor) Send(execute string, args any) (wait func(context.Context) (json.RawMessage, error), err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return nil, m.err
	}
	m.nextID++
	id := strconv.Itoa(m.nextID)
	c := make(chan response, 1)
	m.waiting[id] = c
	m.mu.Unlock()
	b, err := json.Marshal(struct {
		qmp.Command
		ID string `json:"id"`
	}{qmp.Command{Execute: execute, Args: args}, id})
	if err != nil {
		return nil, err
	}
	if _, err := m.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", execute, err)
	}
	return func(ctx context.Context) (json.RawMessage, error) {
		select {
		case r, ok := <-c:
			if !ok {
				return nil, fmt.Errorf("qmp %s: %w", execute, m.closedErr())
			}
			if r.Error != nil {
				return nil, r.Error
			}
			return r.Return, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", execute, ctx.Err())
		}
	}, nil
}

func (m *Monitor) closedErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		return errors.New("qmp: closed")
	}
	return m.err
}

// Execute runs a command and waits for its reply.
func (m *Monitor) Execute(ctx context.Context, execute string, args any) (json.RawMessage, error) {
	wait, err := m.Send(execute, args)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// Run implements qmp.Monitor: command is a JSON qmp.Command; the reply is
// returned whole, as go-qemu's wrappers expect.
func (m *Monitor) Run(command []byte) ([]byte, error) {
	var c qmp.Command
	if err := json.Unmarshal(command, &c); err != nil {
		return nil, fmt.Errorf("qmp: bad command: %w", err)
	}
	ret, err := m.Execute(context.Background(), c.Execute, c.Args)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Return json.RawMessage `json:"return"`
	}{ret})
}

// Events implements qmp.Monitor. The returned channel is fed from an
// unbounded queue, so a slow consumer never blocks the reader.
func (m *Monitor) Events(ctx context.Context) (<-chan qmp.Event, error) {
	out := make(chan qmp.Event)
	go func() {
		defer close(out)
		for {
			m.mu.Lock()
			var ev qmp.Event
			have := len(m.events) > 0
			if have {
				ev = m.events[0]
				m.events = m.events[1:]
			}
			m.mu.Unlock()
			if have {
				select {
				case out <- ev:
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-m.evWake:
			case <-m.stopped:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Disconnect implements qmp.Monitor.
func (m *Monitor) Disconnect() error { return m.conn.Close() }
