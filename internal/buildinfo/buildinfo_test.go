package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionRevisionAndUserAgent(t *testing.T) {
	in := read(&debug.BuildInfo{Main: debug.Module{Version: "v1.4.0+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}, true)
	if in.Version != "v1.4.0+dirty" || in.Revision != "abc123" || !in.Modified {
		t.Fatalf("read %+v", in)
	}
	if s := in.String(); !strings.HasPrefix(s, "v1.4.0+dirty (revision abc123, modified), built with go") {
		t.Errorf("String() = %q", s)
	}
	if ua := in.UserAgent(); ua != "hopprobe/v1.4.0+dirty" {
		t.Errorf("UserAgent() = %q", ua)
	}
	// No stamped version: "(devel)" is not an HTTP token.
	dev := read(&debug.BuildInfo{}, true)
	if dev.Version != "(devel)" || dev.UserAgent() != "hopprobe/devel" {
		t.Errorf("an unstamped build reads %+v, user agent %q", dev, dev.UserAgent())
	}
	if none := read(nil, false); none.Version != "(devel)" || none.GoVersion == "" {
		t.Errorf("no build information reads %+v", none)
	}
}
