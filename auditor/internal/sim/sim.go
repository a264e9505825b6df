package sim

import (
	"bytes"
	"math/rand/v2"
	"strconv"

	"github.com/detvm/detvm/workload/history"
)

// Config shapes a generated history.
type Config struct {
	Seed    uint64
	Ops     int // invocations to record
	Clients int // concurrent clients; each holds one process at a time
	// Keys is how many registers exist, or for list-append how many keys
	// are active at once.
	Keys int
	// MaxAppends retires a list-append key after that many appends and
	// opens a fresh one, as Elle's generator does, so reads stay short.
	MaxAppends int
	// InfoRate is the fraction of ops whose answer is lost: each such op
	// takes effect or not with equal odds and completes as info, and its
	// client carries on under a new process number.
	InfoRate float64
	// FailRate is the fraction of list-append transactions the store
	// aborts (recorded as fail, never applied).
	FailRate float64
	// Corrupt makes that many register reads, spread over the run, return
	// a value nobody wrote: a known bug for negative tests.
	Corrupt int
	// StaleRate is the fraction of list-append transactions whose reads
	// come from a stale snapshot (each list short by up to three elements)
	// while their appends land on the current lists: a store with weak
	// isolation, whose histories are full of cycles.
	StaleRate float64
}

func (c *Config) defaults() {
	if c.Clients <= 0 {
		c.Clients = 8
	}
	if c.Keys <= 0 {
		c.Keys = 8
	}
	if c.MaxAppends <= 0 {
		c.MaxAppends = 64
	}
}

// Latencies in virtual ns: a request reaches the store after 50 µs–2 ms,
// the answer takes as long again, and a client thinks up to 0.5 ms before
// its next request. With 8 clients that keeps several ops in flight at once.
const (
	minLat   = 50_000
	maxLat   = 2_000_000
	maxThink = 500_000
)

type phase int

const (
	idle phase = iota
	applying
	completing
)

type client struct {
	proc    int
	at      int64
	phase   phase
	op      history.Op
	info    bool // answer will be lost
	applied bool // for an info op: did it take effect
	outcome history.Type
	result  any
}

// driver is the event loop shared by both stores: it decides when each
// client invokes, when its op reaches the store and when the answer comes
// back, and records through a real Recorder.
type driver struct {
	cfg     Config
	rng     *rand.Rand
	now     int64
	rec     *history.Recorder
	out     bytes.Buffer
	clients []*client
	invoked int
	// corruptAt lists invocation numbers from which the next read is
	// corrupted, in order.
	corruptAt []int
}

func newDriver(cfg Config) *driver {
	cfg.defaults()
	d := &driver{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	d.rec = history.NewRecorder(&d.out, func() int64 { return d.now })
	for i := range cfg.Clients {
		d.clients = append(d.clients, &client{proc: i, at: d.rng.Int64N(maxThink)})
	}
	for i := 1; i <= cfg.Corrupt; i++ {
		d.corruptAt = append(d.corruptAt, cfg.Ops*i/(cfg.Corrupt+1))
	}
	return d
}

func (d *driver) lat() int64 { return minLat + d.rng.Int64N(maxLat-minLat) }

// run drives the clients until Ops invocations have completed. invoke
// chooses an op; apply performs it on the store at its instant and returns
// the outcome and result.
func (d *driver) run(invoke func(c *client) (f, key string, value any), apply func(c *client) (history.Type, any)) ([]byte, error) {
	for {
		var c *client
		for _, x := range d.clients {
			if x.phase == idle && d.invoked >= d.cfg.Ops {
				continue
			}
			if c == nil || x.at < c.at {
				c = x
			}
		}
		if c == nil {
			return d.out.Bytes(), nil
		}
		d.now = c.at
		switch c.phase {
		case idle:
			f, key, value := invoke(c)
			op, err := d.rec.Invoke(c.proc, f, key, value)
			if err != nil {
				return nil, err
			}
			d.invoked++
			c.op = op
			c.info = d.rng.Float64() < d.cfg.InfoRate
			c.applied = !c.info || d.rng.IntN(2) == 0
			c.phase, c.at = applying, d.now+d.lat()
		case applying:
			c.outcome, c.result = history.Info, nil
			if c.applied {
				c.outcome, c.result = apply(c)
			}
			c.phase, c.at = completing, d.now+d.lat()
		case completing:
			var err error
			switch {
			case c.info:
				_, err = d.rec.Info(c.op, errTimeout)
				c.proc += d.cfg.Clients
			case c.outcome == history.Fail:
				_, err = d.rec.Fail(c.op, errAborted)
			default:
				_, err = d.rec.Ok(c.op, c.result)
			}
			if err != nil {
				return nil, err
			}
			c.phase, c.at = idle, d.now+d.rng.Int64N(maxThink)
		}
	}
}

type simError string

func (e simError) Error() string { return string(e) }

const (
	errTimeout simError = "timeout"
	errAborted simError = "aborted"
)

// Registers records a history of reads, writes and CASes on cfg.Keys
// integer registers, all null at first.
func Registers(cfg Config) ([]byte, error) {
	d := newDriver(cfg)
	regs := map[string]*int64{}
	type req struct {
		f        string
		key      string
		v, from  int64
		corrupt  bool
		sequence int
	}
	reqs := map[*client]req{}
	return d.run(func(c *client) (string, string, any) {
		r := req{key: strconv.Itoa(d.rng.IntN(d.cfg.Keys)), sequence: d.invoked}
		var value any
		switch n := d.rng.IntN(10); {
		case n < 5:
			r.f = history.FRead
			if len(d.corruptAt) > 0 && d.invoked >= d.corruptAt[0] {
				r.corrupt, d.corruptAt = true, d.corruptAt[1:]
			}
		case n < 8:
			r.f, r.v = history.FWrite, d.rng.Int64N(5)
			value = r.v
		default:
			r.f, r.from, r.v = history.FCAS, d.rng.Int64N(5), d.rng.Int64N(5)
			value = []int64{r.from, r.v}
		}
		reqs[c] = r
		return r.f, r.key, value
	}, func(c *client) (history.Type, any) {
		r := reqs[c]
		cur := regs[r.key]
		switch r.f {
		case history.FRead:
			if r.corrupt {
				return history.OK, 1000 + r.sequence
			}
			return history.OK, cur
		case history.FWrite:
			v := r.v
			regs[r.key] = &v
			return history.OK, nil
		default:
			if cur == nil || *cur != r.from {
				return history.Fail, nil
			}
			v := r.v
			regs[r.key] = &v
			return history.OK, nil
		}
	})
}

// ListAppend records a history of list-append transactions of one to four
// micro-ops each, half appends and half reads, over cfg.Keys active keys.
// Elements are unique per key (1, 2, 3, … in invocation order).
func ListAppend(cfg Config) ([]byte, error) {
	d := newDriver(cfg)
	lists := map[string][]int64{}
	active := make([]int, d.cfg.Keys)
	for i := range active {
		active[i] = i
	}
	nextKey := len(active)
	appends := map[int]int64{} // key -> elements handed out so far
	txns := map[*client]history.Txn{}
	return d.run(func(c *client) (string, string, any) {
		n := 1 + d.rng.IntN(4)
		txn := make(history.Txn, 0, n)
		for range n {
			slot := d.rng.IntN(len(active))
			k := active[slot]
			key := strconv.Itoa(k)
			if d.rng.IntN(2) == 0 {
				txn = append(txn, history.ReadKey(key))
				continue
			}
			appends[k]++
			txn = append(txn, history.Append(key, appends[k]))
			if appends[k] >= int64(d.cfg.MaxAppends) {
				active[slot] = nextKey
				nextKey++
			}
		}
		txns[c] = txn
		return history.FTxn, "", txn
	}, func(c *client) (history.Type, any) {
		if !c.info && d.rng.Float64() < d.cfg.FailRate {
			return history.Fail, nil
		}
		in := txns[c]
		out := make(history.Txn, len(in))
		stale := d.rng.Float64() < d.cfg.StaleRate
		for i, m := range in {
			if m.F == history.MicroAppend {
				lists[m.Key] = append(lists[m.Key], m.Value)
				out[i] = m
				continue
			}
			l := lists[m.Key]
			if stale {
				l = l[:max(0, len(l)-1-d.rng.IntN(3))]
			}
			out[i] = history.ReadResult(m.Key, l)
		}
		return history.OK, out
	})
}
