package loadgen

import (
	"errors"
	"net"
	"syscall"
)

// outcome is what an attempt's error says about the operation.
type outcome int

const (
	// unknown: the request may have taken effect (info).
	unknown outcome = iota
	// definite: it did not take effect and must not be retried (fail).
	definite
	// retryable: it was not performed; another attempt is safe.
	retryable
)

// classified is an error with its outcome and, for NotLeader, where to go.
type classified struct {
	outcome outcome
	leader  string
	err     error
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Definite marks err as a definite failure: the operation did not take
// effect, and retrying it would be a new operation. A cas whose comparison
// failed and a request the server rejected before doing anything are
// definite. Run records it as fail.
func Definite(err error) error {
	if err == nil {
		return nil
	}
	return &classified{outcome: definite, err: err}
}

// Unavailable marks err as: the operation was not performed at this
// endpoint, so it can be tried again elsewhere. A refused connection and a
// server saying it cannot serve the request right now are unavailable.
// Run moves to the next endpoint and retries after a backoff.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &classified{outcome: retryable, err: err}
}

// NotLeader is Unavailable with a hint: the endpoint that should be asked
// instead, as a follower's redirect names it. A hint that is not one of
// Config.Endpoints is ignored (the next endpoint is tried).
func NotLeader(leader string, err error) error {
	if err == nil {
		err = errors.New("not the leader")
	}
	return &classified{outcome: retryable, leader: leader, err: err}
}

// classify reads an attempt's error. An error that is not marked is
// unknown: the safe reading when nothing says the request never left.
func classify(err error) (outcome, string) {
	var c *classified
	if errors.As(err, &c) {
		return c.outcome, c.leader
	}
	return unknown, ""
}

// NetError classifies an error of a TCP client (net/http included): a
// failure to connect, which means nothing was sent, is Unavailable; every
// other error is returned as it is and so counts as unknown, since the
// request may have reached the server. nil stays nil.
func NetError(err error) error {
	if err == nil || !notSent(err) {
		return err
	}
	return Unavailable(err)
}

// notSent reports whether err shows that the request never left: the
// connection was refused or could not be made.
func notSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	// A deadline hit while dialling is a dial OpError too; a bare context
	// error is not: the request may have been sent before it.
	return false
}
