// Package loadgen keeps a system under test busy with useful requests and
// records what happened as a Jepsen-style history, from inside the sidecar
// guest.
//
// A workload gives [Run] a [Client] (how to perform one operation against
// one endpoint), a [Generator] (which operation comes next; [Registers] is
// read/write/cas on a few keys) and the endpoints. Run starts Concurrency
// logical clients, Jepsen's processes, each issuing one operation at a time
// at a shared target rate, and records every operation through
// [github.com/detvm/detvm/workload/history]: its invocation, then ok, fail
// or info.
//
// What an error means is the client's to say, because only it knows whether
// a request left the machine:
//
//   - nil: the operation happened (ok).
//   - [Definite]: it definitely did not happen, e.g. a cas whose comparison
//     failed (fail).
//   - [Unavailable] or [NotLeader]: it was not performed here, so it is safe
//     to try again: the client moves to the next endpoint (or the leader it
//     was told of) and retries with exponential backoff and jitter. When the
//     retries run out the operation is a fail.
//   - anything else, a timeout or a connection reset after the request was
//     sent: the outcome is unknown (info). Jepsen's rule applies: the process
//     is crashed and the client goes on as a new process. An unknown read has
//     no effect, so reads are recorded as fail instead (Config.ReadOnly).
//
// [NetError] sorts Go's network errors into these classes for HTTP and
// other TCP clients.
//
// Everything that varies comes from the guest: random choices from its
// kernel RNG (sdk.Random), times from its clocks, which are virtual. So a
// run with the same seed issues the same operations at the same virtual
// times and records the same history, and a run branched from a snapshot
// with another seed chooses anew. At the end Run prints a summary and
// reports it as SDK properties ("a request succeeds", "most requests
// succeed").
package loadgen
