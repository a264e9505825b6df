package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detvm/detvm/workload/history"
)

// Client performs one operation against one endpoint (an address from
// Config.Endpoints) and returns what it returned: a read's value (an
// int64, or nil for a register never written), nil for a write. Its error
// says what is known about the outcome (see the package doc): nil, a
// Definite or Unavailable error, or any other error for "unknown".
//
// Run calls Do from Concurrency goroutines at once. ctx carries the
// attempt's timeout (Config.Timeout).
type Client interface {
	Do(ctx context.Context, endpoint string, op Op) (any, error)
}

// ClientFunc adapts a function to a Client.
type ClientFunc func(ctx context.Context, endpoint string, op Op) (any, error)

// Do calls f.
func (f ClientFunc) Do(ctx context.Context, endpoint string, op Op) (any, error) {
	return f(ctx, endpoint, op)
}

// Config describes a load. Client, Generator and Endpoints are required,
// and at least one of Duration and Ops bounds the run (or ctx does).
type Config struct {
	Client    Client
	Generator Generator
	// Endpoints are tried in a rotating order: client i starts at
	// Endpoints[i mod len], stays on an endpoint while it works and moves
	// on when it is unavailable, times out, or names another as leader.
	Endpoints []string
	// Concurrency is the number of clients, each one Jepsen process at a
	// time, each with one operation outstanding. Default 5.
	Concurrency int
	// Rate is the target number of operations per second over all
	// clients; 0: as fast as the clients go.
	Rate float64
	// Duration stops new operations this long after Run starts; Ops stops
	// them after that many. 0: no such limit. Operations in flight finish.
	Duration time.Duration
	Ops      int
	// Timeout bounds one attempt of an operation. Default 1s.
	Timeout time.Duration
	// Retries is how many more attempts an Unavailable operation gets, each
	// after a backoff that starts at Backoff and doubles up to MaxBackoff,
	// with jitter (a uniform draw from [d/2, d)). Defaults 3, 20ms, 500ms;
	// a negative Retries means none.
	Retries    int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Seed seeds every client's RNG (the operations it draws and its
	// jitter), which makes the choices a function of Seed alone. 0, the
	// default, draws every choice from the kernel's RNG (sdk.Random): in a
	// detvm guest that is a function of the run seed too, and it follows
	// a branch seed, so a run branched from a snapshot mid-load makes new
	// choices from the branch on.
	Seed uint64
	// History receives the history's JSON lines; nil means
	// sdk.HistoryWriter(), from which detvm collects <run>/history.jsonl.
	History io.Writer
	// Now stamps history ops, in nanoseconds; nil means the guest's
	// CLOCK_MONOTONIC, virtual in a detvm guest and the clock output.log
	// uses.
	Now func() int64
	// Log receives the summary line; nil means os.Stdout.
	Log io.Writer
	// ReadOnly says which operations have no effect, so that an unknown
	// outcome of one is recorded as fail and its client keeps its process.
	// nil means reads (history.FRead).
	ReadOnly func(f string) bool
	// NoProperties skips reporting the summary as SDK properties.
	NoProperties bool
}

// Stats counts a run's operations by how they ended.
type Stats struct {
	OK, Fail, Info int
	// Retries is the number of extra attempts after Unavailable errors.
	Retries int
	// Processes is the number of processes used: Concurrency plus one for
	// every info.
	Processes int
}

// Ops is the number of operations that completed.
func (s Stats) Ops() int { return s.OK + s.Fail + s.Info }

// OKRatio is the share of completed operations that succeeded; 0 if none
// completed.
func (s Stats) OKRatio() float64 {
	if s.Ops() == 0 {
		return 0
	}
	return float64(s.OK) / float64(s.Ops())
}

// String is the summary line, e.g.
// "412 ops: 380 ok, 20 fail, 12 info (92.2% ok), 31 retries, 17 processes".
func (s Stats) String() string {
	return fmt.Sprintf("%d ops: %d ok, %d fail, %d info (%.1f%% ok), %d retries, %d processes",
		s.Ops(), s.OK, s.Fail, s.Info, 100*s.OKRatio(), s.Retries, s.Processes)
}

func (c *Config) defaults() error {
	switch {
	case c.Client == nil:
		return errors.New("loadgen: no Client")
	case c.Generator == nil:
		return errors.New("loadgen: no Generator")
	case len(c.Endpoints) == 0:
		return errors.New("loadgen: no Endpoints")
	case c.Rate < 0:
		return fmt.Errorf("loadgen: Rate %v is negative", c.Rate)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 5
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Retries == 0 {
		c.Retries = 3
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = 20 * time.Millisecond
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = max(c.Backoff, 500*time.Millisecond)
	}
	if c.ReadOnly == nil {
		c.ReadOnly = func(f string) bool { return f == history.FRead }
	}
	if c.Log == nil {
		c.Log = os.Stdout
	}
	if c.Now == nil {
		c.Now = monotonic
	}
	return nil
}

// Run drives the load until Duration or Ops is reached or ctx is done,
// waits for the operations in flight, prints the summary to Log and
// reports it as SDK properties. It returns an error only for a bad Config
// or a history that can no longer be written; the system under test
// failing requests is what Stats count.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if err := cfg.defaults(); err != nil {
		return Stats{}, err
	}
	if cfg.History == nil {
		cfg.History = sdkHistory()
	}
	r := &runner{cfg: cfg, rec: history.NewRecorder(cfg.History, cfg.Now), start: time.Now()}
	if cfg.Rate > 0 {
		r.interval = time.Duration(float64(time.Second) / cfg.Rate)
		r.slot = r.start
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		// Stops the pacing and the backoff sleeps; attempts in flight get
		// their own timeout (below), not this one.
		ctx, cancel = context.WithDeadline(ctx, r.start.Add(cfg.Duration))
		defer cancel()
	}
	var wg sync.WaitGroup
	errs := make([]error, cfg.Concurrency)
	for i := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.client(ctx, i)
		}()
	}
	wg.Wait()
	st := r.stats()
	fmt.Fprintf(cfg.Log, "loadgen: %v\n", st)
	if !cfg.NoProperties {
		report(st)
	}
	return st, errors.Join(errs...)
}

type runner struct {
	cfg   Config
	rec   *history.Recorder
	start time.Time

	invoked atomic.Int64 // operations claimed, for Config.Ops

	mu       sync.Mutex
	interval time.Duration // between operations; 0: no pacing
	slot     time.Time     // the next operation's start
	st       Stats
}

func (r *runner) stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// pace waits for the next slot of the target rate; false means stop.
func (r *runner) pace(ctx context.Context) bool {
	if r.cfg.Ops > 0 && r.invoked.Add(1) > int64(r.cfg.Ops) {
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	if r.interval == 0 {
		return true
	}
	r.mu.Lock()
	now := time.Now()
	if r.slot.Before(now) {
		// Behind schedule: do not make up for lost time with a burst.
		r.slot = now
	}
	at := r.slot
	r.slot = r.slot.Add(r.interval)
	r.mu.Unlock()
	return sleep(ctx, time.Until(at))
}

// sleep waits d or until ctx is done; false if ctx ended it.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// client is one logical client: process i, then i+Concurrency after its
// first info, and so on.
func (r *runner) client(ctx context.Context, i int) error {
	cfg := r.cfg
	var rng *rand.Rand
	if cfg.Seed != 0 {
		rng = rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
	} else {
		rng = rand.New(kernelSource{})
	}
	process := i
	ep := i % len(cfg.Endpoints)
	r.mu.Lock()
	r.st.Processes++
	r.mu.Unlock()
	for r.pace(ctx) {
		op := cfg.Generator.Next(process, rng)
		inv, err := r.rec.Invoke(process, op.F, op.Key, op.Value)
		if err != nil {
			return err
		}
		value, out, err := r.attempts(ctx, rng, &ep, op)
		if out == unknown && cfg.ReadOnly(op.F) {
			out = definite
		}
		if obs, ok := cfg.Generator.(Observer); ok {
			obs.Observe(op, err == nil, value)
		}
		r.mu.Lock()
		switch {
		case err == nil:
			r.st.OK++
		case out == unknown:
			r.st.Info++
		default:
			r.st.Fail++
		}
		r.mu.Unlock()
		switch {
		case err == nil:
			_, err = r.rec.Ok(inv, value)
		case out == unknown:
			if _, err = r.rec.Info(inv, err); err == nil {
				// Crashed: go on as a new process, and elsewhere, as
				// the endpoint may be what hung.
				process += cfg.Concurrency
				ep = (ep + 1) % len(cfg.Endpoints)
				r.mu.Lock()
				r.st.Processes++
				r.mu.Unlock()
			}
		default:
			_, err = r.rec.Fail(inv, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// attempts performs op, retrying an Unavailable one on the next endpoint
// (or the leader named) after a backoff. It returns the op's value and, for
// an error, its outcome; the retries exhausted are definite, as no attempt
// was performed.
func (r *runner) attempts(ctx context.Context, rng *rand.Rand, ep *int, op Op) (any, outcome, error) {
	cfg := r.cfg
	backoff := cfg.Backoff
	for try := 0; ; try++ {
		// The attempt outlives the run's deadline: an operation that was
		// invoked gets its full timeout, so that it is not cut into an
		// info by the end of the load.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
		value, err := cfg.Client.Do(actx, cfg.Endpoints[*ep], op)
		cancel()
		if err == nil {
			return value, 0, nil
		}
		out, leader := classify(err)
		if out != retryable {
			return nil, out, err
		}
		*ep = r.nextEndpoint(*ep, leader)
		if try >= cfg.Retries {
			return nil, definite, fmt.Errorf("gave up after %d attempts: %w", try+1, err)
		}
		d := backoff/2 + time.Duration(rng.Int64N(int64(backoff/2)+1))
		backoff = min(2*backoff, cfg.MaxBackoff)
		if !sleep(ctx, d) {
			return nil, definite, fmt.Errorf("load ended while retrying: %w", err)
		}
		r.mu.Lock()
		r.st.Retries++
		r.mu.Unlock()
	}
}

// nextEndpoint is the leader named, if it is an endpoint, else the one
// after ep.
func (r *runner) nextEndpoint(ep int, leader string) int {
	if leader != "" {
		for i, e := range r.cfg.Endpoints {
			if e == leader {
				return i
			}
		}
	}
	return (ep + 1) % len(r.cfg.Endpoints)
}
