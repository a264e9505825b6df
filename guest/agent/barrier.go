package agent

// barrier executes the barrier hypercall (barrier_amd64.s). Being an
// assembly call, it is also a compiler barrier: stores to the shared page
// before it are done when the controller looks.
func barrier()
