package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/auditor/linear"
	"github.com/detvm/detvm/workload/history"
)

// store is a fake system under test: one register per key behind a mutex,
// which is linearizable, reached through endpoints that can misbehave.
type store struct {
	mu   sync.Mutex
	regs map[string]int64
	// stale, if set, is a copy of regs that reads are served from and that
	// writes reach only every other time: a broken replica.
	stale map[string]int64
	n     int

	refuse   map[string]bool   // endpoint → connection refused
	redirect map[string]string // endpoint → "not the leader, ask X"
	// hang is the chance that an operation takes effect and then the
	// reply never comes (the client's timeout fires): an info.
	hang float64
	rng  *rand.Rand

	calls map[string]int // endpoint → attempts
}

func newStore() *store {
	return &store{regs: map[string]int64{}, refuse: map[string]bool{}, redirect: map[string]string{},
		rng: rand.New(rand.NewPCG(1, 2)), calls: map[string]int{}}
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func (s *store) Do(ctx context.Context, ep string, op Op) (any, error) {
	s.mu.Lock()
	s.calls[ep]++
	if s.refuse[ep] {
		s.mu.Unlock()
		return nil, NetError(fmt.Errorf("post http://%s/: %w", ep, errRefused))
	}
	if l, ok := s.redirect[ep]; ok {
		s.mu.Unlock()
		return nil, NotLeader(l, fmt.Errorf("%s is not the leader", ep))
	}
	value, err := s.apply(op)
	hang := s.rng.Float64() < s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, NetError(ctx.Err())
	}
	return value, err
}

// apply performs op; called with s.mu held.
func (s *store) apply(op Op) (any, error) {
	s.n++
	switch op.F {
	case history.FRead:
		regs := s.regs
		if s.stale != nil {
			regs = s.stale
		}
		v, ok := regs[op.Key]
		if !ok {
			return nil, nil
		}
		return v, nil
	case history.FWrite:
		v, _, err := RegisterValue(op)
		if err != nil {
			return nil, Definite(err)
		}
		s.regs[op.Key] = v
		if s.stale != nil && s.n%2 == 0 {
			s.stale[op.Key] = v
		}
		return nil, nil
	case history.FCAS:
		to, from, err := RegisterValue(op)
		if err != nil {
			return nil, Definite(err)
		}
		if cur, ok := s.regs[op.Key]; !ok || cur != from {
			return nil, Definite(errors.New("compare failed"))
		}
		s.regs[op.Key] = to
		return nil, nil
	}
	return nil, Definite(fmt.Errorf("unknown f %q", op.F))
}

// load runs cfg against st with test defaults and returns the stats and
// the history read back.
func load(t *testing.T, cfg Config) (Stats, []history.Op) {
	t.Helper()
	var buf bytes.Buffer
	cfg.History = &buf
	cfg.Log = io.Discard
	cfg.NoProperties = true
	st, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := history.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return st, ops
}

// count checks that the history agrees with the stats.
func count(t *testing.T, st Stats, ops []history.Op) {
	t.Helper()
	var got Stats
	for _, op := range ops {
		switch op.Type {
		case history.OK:
			got.OK++
		case history.Fail:
			got.Fail++
		case history.Info:
			got.Info++
		}
	}
	if got.OK != st.OK || got.Fail != st.Fail || got.Info != st.Info {
		t.Fatalf("history has %d ok, %d fail, %d info; stats say %v", got.OK, got.Fail, got.Info, st)
	}
	if _, err := history.Pairs(ops); err != nil {
		t.Fatal(err)
	}
}

// TestLinearizable: against a correct store, with a refusing endpoint and
// operations whose replies get lost, the history is linearizable, each
// info crashes its process for good, and reads never end in info.
func TestLinearizable(t *testing.T) {
	s := newStore()
	s.refuse["n2"] = true
	s.hang = 0.05
	gen := &Registers{Keys: []string{"x", "y", "z"}}
	st, ops := load(t, Config{Client: s, Generator: gen, Endpoints: []string{"n1", "n2", "n3"},
		Concurrency: 4, Ops: 400, Timeout: 5 * time.Millisecond})
	t.Logf("%v", st)
	count(t, st, ops)
	if st.Ops() != 400 {
		t.Errorf("%d ops completed, want 400", st.Ops())
	}
	if st.Info == 0 || st.OK == 0 || st.Retries == 0 {
		t.Errorf("%v: want some of each of ok, info and retries", st)
	}
	if st.Processes != 4+st.Info {
		t.Errorf("%d processes for %d infos and 4 clients", st.Processes, st.Info)
	}
	fs := map[string]int{}
	for _, op := range ops {
		if op.Type == history.Info && op.F == history.FRead {
			t.Errorf("read ended in info: %v", op)
		}
		if op.Type == history.OK {
			fs[op.F]++
		}
	}
	if fs[history.FRead] == 0 || fs[history.FWrite] == 0 || fs[history.FCAS] == 0 {
		t.Errorf("ok ops by f: %v; want reads, writes and successful cas", fs)
	}
	res, err := linear.Check(ops, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != auditor.Passed {
		t.Fatalf("history of a correct store: %s %v", res.Status, res.Bad)
	}
}

// TestStaleReadsCaught: a store that serves reads from a lagging replica
// gives a history the checker rejects.
func TestStaleReadsCaught(t *testing.T) {
	s := newStore()
	s.stale = map[string]int64{}
	st, ops := load(t, Config{Client: s, Generator: &Registers{Keys: []string{"x"}}, Endpoints: []string{"n1"},
		Concurrency: 3, Ops: 200})
	count(t, st, ops)
	res, err := linear.Check(ops, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != auditor.Failed || len(res.Bad) == 0 {
		t.Fatalf("stale reads not caught: %s", res.Status)
	}
}

// TestFindsLeader: a refusing endpoint and a follower that names the
// leader are retried past; every operation ends ok at the leader.
func TestFindsLeader(t *testing.T) {
	s := newStore()
	s.refuse["a"] = true
	s.redirect["b"] = "c"
	st, ops := load(t, Config{Client: s, Generator: &Registers{Keys: []string{"x"}, Read: 1, Write: 1},
		Endpoints: []string{"a", "b", "c"}, Concurrency: 3, Ops: 60, Backoff: time.Millisecond})
	count(t, st, ops)
	if st.OK != 60 {
		t.Fatalf("%v; want all 60 ok", st)
	}
	// Client 0 starts at a (refused, then b), client 1 at b, client 2 at c:
	// two wrong attempts at most, once; then everyone sticks to c.
	if s.calls["a"] > 1 || s.calls["b"] > 2 || st.Retries > 3 {
		t.Fatalf("calls %v, %d retries: clients did not stick to the leader", s.calls, st.Retries)
	}
}

// TestGivesUp: with every endpoint refusing, each operation is tried
// 1+Retries times and recorded as fail (it never happened), not info.
func TestGivesUp(t *testing.T) {
	s := newStore()
	for _, e := range []string{"a", "b"} {
		s.refuse[e] = true
	}
	st, ops := load(t, Config{Client: s, Generator: &Registers{Keys: []string{"x"}}, Endpoints: []string{"a", "b"},
		Concurrency: 2, Ops: 10, Retries: 2, Backoff: time.Millisecond})
	count(t, st, ops)
	if st.Fail != 10 || st.Retries != 20 || s.calls["a"]+s.calls["b"] != 30 {
		t.Fatalf("%v, calls %v; want 10 fails after 3 attempts each", st, s.calls)
	}
	for _, op := range ops {
		if op.Type == history.Fail && !strings.Contains(op.Error, "gave up after 3 attempts") {
			t.Fatalf("fail without the reason: %v", op)
		}
	}
}

// TestDeterministic: one client with the same seed issues the same
// operations; another seed, others.
func TestDeterministic(t *testing.T) {
	seq := func(seed uint64) string {
		_, ops := load(t, Config{Client: newStore(), Generator: &Registers{Keys: []string{"x", "y"}}, Endpoints: []string{"n"},
			Concurrency: 1, Ops: 50, Seed: seed})
		var b strings.Builder
		for _, op := range ops {
			op.Time = 0
			fmt.Fprintln(&b, op)
		}
		return b.String()
	}
	a, b, c := seq(3), seq(3), seq(4)
	if a != b {
		t.Fatalf("same seed, different histories:\n%s\nvs\n%s", a, b)
	}
	if a == c {
		t.Fatal("seeds 3 and 4 gave the same history")
	}
}

// TestRate: the target rate bounds the number of operations in a duration.
func TestRate(t *testing.T) {
	st, _ := load(t, Config{Client: newStore(), Generator: &Registers{Keys: []string{"x"}}, Endpoints: []string{"n"},
		Concurrency: 4, Rate: 200, Duration: 250 * time.Millisecond})
	// 50 slots in 250 ms, the first at 0; a loaded host may manage fewer.
	if st.Ops() > 51 || st.Ops() < 5 {
		t.Fatalf("%d ops in 250 ms at 200/s", st.Ops())
	}
}

func TestNetError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want outcome
	}{
		{fmt.Errorf("post: %w", errRefused), retryable},
		{&net.OpError{Op: "dial", Err: context.DeadlineExceeded}, retryable},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), unknown},
		{context.DeadlineExceeded, unknown},
		{Definite(errors.New("cas: compare failed")), definite},
	} {
		if got, _ := classify(NetError(tc.err)); got != tc.want {
			t.Errorf("%v: outcome %d, want %d", tc.err, got, tc.want)
		}
	}
	if NetError(nil) != nil {
		t.Error("NetError(nil) is not nil")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Generator: &Registers{}, Endpoints: []string{"a"}},
		{Client: newStore(), Endpoints: []string{"a"}},
		{Client: newStore(), Generator: &Registers{}},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
