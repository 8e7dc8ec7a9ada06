package demo

import (
	"os"
	"path/filepath"
	"regexp"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/probes"

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

// StartCopy relocates the demo topology src, lets edit change its text,
// writes it into dir as demo.yaml and starts its stand-ins: a copy of
// the demo that runs beside any other. It returns the topology file.
func StartCopy(src []byte, dir string, edit func(string) string) (string, *Demo, error) {
	moved, err := Relocate(src)
	if err != nil {
		return "", nil, err
	}
	text := string(moved)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", nil, err
	}
	probes.RegisterKinds()
	cfg, err := config.Load(path)
	if err != nil {
		return "", nil, err
	}
	d, err := Start(cfg)
	if err != nil {
		return "", nil, err
	}
	return path, d, nil
}
