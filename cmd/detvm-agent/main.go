// Command detvm-agent is PID 1 (/init) of every detvm guest. Build it static:
// CGO_ENABLED=0 go build ./cmd/detvm-agent.
package main

import "github.com/detvm/detvm/guest/agent"

func main() { agent.Main() }
