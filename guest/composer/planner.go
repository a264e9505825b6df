package composer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultParallelism = 3
	// DefaultMaxPause bounds the pause after each driver start and before
	// each run of an anytime command.
	DefaultMaxPause = time.Second
)

// Never is a Wake time that means: only an exit can move the plan on.
const Never = time.Duration(math.MaxInt64)

// Config bounds a run of a template. Times are virtual, since the origin
// the caller measures Poll's now from.
type Config struct {
	// Deadline: drivers and anytime commands start only before it; the
	// eventually_ and finally_ phase starts once it has passed and every
	// command started before it has exited.
	Deadline time.Duration
	// Parallelism is the most parallel_driver_ instances running at
	// once; < 1 means DefaultParallelism.
	Parallelism int
	// MaxPause bounds the pauses, drawn uniformly in whole milliseconds
	// from [0, MaxPause], between one driver start and the next choice,
	// and before each run of an anytime command; 0 means DefaultMaxPause.
	MaxPause time.Duration
}

// Start is one instance of a command to start now. ID is unique within the
// run, from 1, in start order; Exited takes it back.
type Start struct {
	ID   int
	Name string
	Kind Kind
}

// Output is what one Poll decided.
type Output struct {
	Starts []Start
	// Notes are lines for a person: the choices made and why a phase
	// began or was skipped.
	Notes []string
	// Wake is the latest time at which to Poll again if nothing exits
	// before; Never if only an exit can change anything.
	Wake time.Duration
	// Done: the test is over and nothing runs.
	Done bool
}

type phase uint8

const (
	phaseStart phase = iota
	phaseFirst
	phaseDrivers
	phaseDrain
	phaseEventually
	phaseFinally
	phaseDone
)

// Planner decides, for one run of one template, which command starts when.
// The phases follow Antithesis' Test Composer, in one timeline (see
// docs/composer.md):
//
//  1. first: one first_ command, drawn from rng if there are several, runs
//     alone to completion. If it fails nothing else runs.
//  2. drivers, until Config.Deadline. Either the only driver is one
//     singleton_driver_ command, run once, or drivers are drawn one after
//     another from the parallel_driver_ and serial_driver_ commands: a
//     parallel one starts when fewer than Parallelism run and no serial
//     one does, a serial one when no driver runs; a drawn driver waits
//     for its turn, and after it starts the next is drawn after a pause.
//     When the template has both, the choice between each singleton and
//     the mix is drawn, each equally likely. Meanwhile each anytime_
//     command runs again and again, one instance at a time, after a pause
//     before each run.
//  3. drain: from the deadline on nothing new starts; the planner waits
//     for every running command.
//  4. eventually: every eventually_ command, one after another in name
//     order.
//  5. finally: every finally_ command, one after another in name order,
//     but only if every driver instance exited 0.
//
// A Planner is not safe for concurrent use.
type Planner struct {
	t   *Template
	cfg Config
	rng *rand.Rand

	phase   phase
	nextID  int
	running map[int]Start

	drivers  map[Kind]int // driver instances running, by kind
	solo     string       // the singleton of a singleton run; "" for a mix
	soloDone bool         // solo has been started
	mix      []string     // the parallel and serial drivers a mix draws from
	pending  string       // a drawn driver waiting for its turn
	decideAt time.Duration

	anyRunning map[string]bool
	anyNext    map[string]time.Duration // when a stopped anytime command runs next

	firstFailed   string // "first_x exited with N", which ends the test
	driverFailure string // the first driver instance that failed, likewise
	queue         []string

	out Output
}

// New plans a run of t. Every random choice is drawn from rng, in an order
// that depends only on the calls made.
func New(t *Template, cfg Config, rng *rand.Rand) *Planner {
	if cfg.Parallelism < 1 {
		cfg.Parallelism = DefaultParallelism
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = DefaultMaxPause
	}
	return &Planner{
		t: t, cfg: cfg, rng: rng,
		running:    map[int]Start{},
		drivers:    map[Kind]int{},
		anyRunning: map[string]bool{},
		anyNext:    map[string]time.Duration{},
	}
}

// Running returns the instances started and not yet exited, in start order.
func (p *Planner) Running() []Start {
	var out []Start
	for id := 1; id <= p.nextID; id++ {
		if s, ok := p.running[id]; ok {
			out = append(out, s)
		}
	}
	return out
}

// Exited records that instance id exited with code (a negative code is a
// signal). An unknown id is ignored.
func (p *Planner) Exited(id, code int) {
	s, ok := p.running[id]
	if !ok {
		return
	}
	delete(p.running, id)
	failed := func() string { return fmt.Sprintf("%s exited with %d", s.Name, code) }
	switch {
	case s.Kind == First:
		if code != 0 {
			p.firstFailed = failed()
		}
	case s.Kind.Driver():
		p.drivers[s.Kind]--
		if code != 0 && p.driverFailure == "" {
			p.driverFailure = failed()
		}
	case s.Kind == Anytime:
		delete(p.anyRunning, s.Name)
	}
}

// Poll returns what to start at time now, which must not go back. Call it
// first at the start of the test, then after every exit and whenever the
// previous Output's Wake has come.
func (p *Planner) Poll(now time.Duration) Output {
	p.out = Output{Wake: Never}
	for {
		switch p.phase {
		case phaseStart:
			p.note("template %s: %s", p.t.Name, p.summary())
			firsts := p.t.Of(First)
			if len(firsts) == 0 {
				p.beginDrivers(now)
				continue
			}
			name := firsts[p.rng.IntN(len(firsts))]
			if len(firsts) > 1 {
				p.note("first: %s, drawn from %d first_ commands", name, len(firsts))
			}
			p.start(name, First)
			p.phase = phaseFirst
		case phaseFirst:
			if len(p.running) > 0 {
				return p.out
			}
			if p.firstFailed != "" {
				p.note("%s: nothing else runs", p.firstFailed)
				p.phase = phaseDone
				continue
			}
			p.beginDrivers(now)
		case phaseDrivers:
			if now >= p.cfg.Deadline {
				p.phase = phaseDrain
				if n := len(p.running); n > 0 {
					p.note("driver phase over at %v: waiting for %d running command(s)", p.cfg.Deadline, n)
				}
				if p.pending != "" {
					p.note("%s, drawn, did not get its turn before %v", p.pending, p.cfg.Deadline)
					p.pending = ""
				}
				continue
			}
			p.out.Wake = p.drive(now)
			return p.out
		case phaseDrain:
			if len(p.running) > 0 {
				return p.out
			}
			p.queue = p.t.Of(Eventually)
			p.phase = phaseEventually
		case phaseEventually, phaseFinally:
			if len(p.running) > 0 {
				return p.out
			}
			if len(p.queue) > 0 {
				name := p.queue[0]
				p.queue = p.queue[1:]
				k, _ := Classify(name)
				p.start(name, k)
				return p.out
			}
			if p.phase == phaseFinally {
				p.phase = phaseDone
				continue
			}
			p.phase = phaseFinally
			if fin := p.t.Of(Finally); len(fin) > 0 && p.driverFailure != "" {
				p.note("finally_ commands skipped: %s", p.driverFailure)
			} else {
				p.queue = fin
			}
		case phaseDone:
			p.out.Done = true
			return p.out
		}
	}
}

// beginDrivers enters the driver phase at now: it draws the kind of run.
func (p *Planner) beginDrivers(now time.Duration) {
	p.phase = phaseDrivers
	if now >= p.cfg.Deadline {
		p.note("no time for drivers: the deadline %v has passed", p.cfg.Deadline)
		return
	}
	p.mix = append(p.t.Of(ParallelDriver), p.t.Of(SerialDriver)...)
	solos := p.t.Of(SingletonDriver)
	choices := len(solos)
	if len(p.mix) > 0 {
		choices++ // the mix is one more choice
	}
	if len(solos) > 0 {
		i := 0
		if choices > 1 {
			i = p.rng.IntN(choices)
		}
		if i < len(solos) {
			p.solo = solos[i]
		}
	}
	switch {
	case p.solo != "":
		p.note("drivers until %v: %s alone", p.cfg.Deadline, p.solo)
	case len(p.mix) > 0:
		p.note("drivers until %v: drawn from %d, up to %d in parallel", p.cfg.Deadline, len(p.mix), p.cfg.Parallelism)
	default:
		p.note("anytime commands until %v", p.cfg.Deadline)
	}
}

// drive starts what is due in the driver phase at now, before the
// deadline, and returns when it next has something to do.
func (p *Planner) drive(now time.Duration) time.Duration {
	wake := p.cfg.Deadline
	if p.solo != "" && !p.soloDone {
		p.soloDone = true
		p.start(p.solo, SingletonDriver)
	}
	for p.solo == "" && len(p.mix) > 0 {
		if p.pending == "" {
			if now < p.decideAt {
				wake = min(wake, p.decideAt)
				break
			}
			p.pending = p.mix[p.rng.IntN(len(p.mix))]
		}
		k, _ := Classify(p.pending)
		if !p.canStart(k) {
			break // an exit makes room
		}
		p.start(p.pending, k)
		p.pending = ""
		p.decideAt = now + p.pause()
	}
	for _, name := range p.t.Of(Anytime) {
		if p.anyRunning[name] {
			continue
		}
		at, ok := p.anyNext[name]
		if !ok {
			at = now + p.pause()
			p.anyNext[name] = at
		}
		if now < at {
			wake = min(wake, at)
			continue
		}
		delete(p.anyNext, name)
		p.anyRunning[name] = true
		p.start(name, Anytime)
	}
	return wake
}

func (p *Planner) canStart(k Kind) bool {
	if k == SerialDriver {
		return p.drivers[ParallelDriver] == 0 && p.drivers[SerialDriver] == 0
	}
	return p.drivers[SerialDriver] == 0 && p.drivers[ParallelDriver] < p.cfg.Parallelism
}

func (p *Planner) pause() time.Duration {
	ms := int64(p.cfg.MaxPause / time.Millisecond)
	return time.Duration(p.rng.Int64N(ms+1)) * time.Millisecond
}

func (p *Planner) start(name string, k Kind) {
	p.nextID++
	s := Start{ID: p.nextID, Name: name, Kind: k}
	p.running[s.ID] = s
	if k.Driver() {
		p.drivers[k]++
	}
	p.out.Starts = append(p.out.Starts, s)
}

func (p *Planner) note(format string, args ...any) {
	p.out.Notes = append(p.out.Notes, fmt.Sprintf(format, args...))
}

// summary counts the template's commands by kind, like
// "1 first, 2 parallel_driver, 1 eventually".
func (p *Planner) summary() string {
	var parts []string
	for k := First; k <= Finally; k++ {
		if n := len(p.t.Of(k)); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	return strings.Join(parts, ", ")
}
