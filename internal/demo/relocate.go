package demo

import (
	"fmt"
	"net"
	"regexp"
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
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			err = lerr
			return a
		}
		defer ln.Close()
		// The same port must be free for UDP too (the DNS stand-in).
		pc, perr := net.ListenPacket("udp", ln.Addr().String())
		if perr != nil {
			err = fmt.Errorf("port %s is taken for udp: %w", ln.Addr(), perr)
			return a
		}
		pc.Close()
		moved[a] = ln.Addr().String()
		return moved[a]
	})
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}
