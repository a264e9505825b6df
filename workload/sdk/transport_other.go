//go:build !linux

package sdk

import "errors"

// dial fails: detvm guests are Linux, and elsewhere messages go to stderr.
func dial(path string) (transport, error) {
	return nil, errors.New("the detvm SDK socket needs Linux")
}
