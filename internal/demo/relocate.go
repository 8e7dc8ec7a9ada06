package demo

import (
	"regexp"

	"github.com/allinx/hopprobe/internal/peers"
)

var loopbackAddr = regexp.MustCompile(`127\.0\.0\.1:(\d{2,5})`)

// Relocate rewrites a demo topology so that several copies can run side
// by side (tests, a demo next to `make test`): every distinct loopback
// address gets a free port. Files the demo writes (.demo/…) follow the
// rewritten topology, since relative paths resolve against its directory.
func Relocate(src []byte) ([]byte, error) {
	moved := map[string]string{}
	var err error
	out := loopbackAddr.ReplaceAllStringFunc(string(src), func(a string) string {
		if m, ok := moved[a]; ok {
			return m
		}
		// Free for TCP and UDP (the DNS stand-in), and outside the
		// ephemeral range so no outgoing connection takes it first.
		free, ferr := peers.FreePort()
		if ferr != nil {
			err = ferr
			return a
		}
		moved[a] = free
		return moved[a]
	})
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}
