// Package buildinfo says which build of hopprobe is running, from the
// module's build information (go build and go run stamp the module
// version and the VCS revision), so that --version, the
// hopprobe_build_info series and the probes' User-Agent agree.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Info is one build's identity.
type Info struct {
	Version   string // the module version, "(devel)" when none was stamped
	Revision  string // the VCS revision, "" when none was stamped
	Modified  bool   // the work tree differed from Revision
	GoVersion string
}

// Get reads the running binary's build information once.
var Get = sync.OnceValue(func() Info { return read(debug.ReadBuildInfo()) })

func read(bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version()}
	if !ok {
		return in
	}
	if bi.Main.Version != "" {
		in.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is what `probe --version` prints after the program's name.
func (in Info) String() string {
	out := in.Version
	if in.Revision != "" {
		out += " (revision " + in.Revision
		if in.Modified {
			out += ", modified"
		}
		out += ")"
	}
	return out + ", built with " + in.GoVersion + " for " + runtime.GOOS + "/" + runtime.GOARCH
}

// UserAgent is what HTTP and WebSocket probes send: "hopprobe/" and the
// version as an HTTP token (a build without one says "devel"), so that a
// peer's access log tells which build probed it.
func (in Info) UserAgent() string {
	v := strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return r
		}
		return -1
	}, in.Version)
	if v == "" || v == "devel" {
		v = "devel"
	}
	return "hopprobe/" + v
}
