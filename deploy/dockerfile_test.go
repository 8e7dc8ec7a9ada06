package deploy_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The Dockerfile is linted with BuildKit's own rule set (what `docker
// build --check` runs at parse time; hadolint is not in Debian), then
// checked for what the deployment relies on: a static binary, a
// non-root distroless final stage, and an exec-form entrypoint that needs
// no shell.
func TestDockerfileLintsCleanAndRunsAsNonRoot(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	var warnings []string
	lint := linter.New(&linter.Config{ExperimentalAll: true, Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("Dockerfile:%d: %s: %s", line, rule, msg))
	}})
	for _, w := range res.Warnings {
		warnings = append(warnings, fmt.Sprintf("Dockerfile:%d: %s", w.Location.Start.Line, w.Short))
	}
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	for _, w := range warnings {
		t.Error(w)
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage is FROM %s; want distroless/static or scratch", final.BaseName)
	}
	var user string
	var entry *instructions.EntrypointCommand
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entry = c
		case *instructions.RunCommand:
			t.Errorf("the final stage runs %q: it has no shell", c.String())
		}
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("final stage USER is %q; want a non-root uid", user)
	}
	if entry == nil || entry.PrependShell || entry.CmdLine[0] != "/probe" {
		t.Errorf("ENTRYPOINT must be exec form [\"/probe\"], got %+v", entry)
	}
	static := false
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(r.String(), "CGO_ENABLED=0") {
			static = true
		}
	}
	if !static {
		t.Error("the build stage must build with CGO_ENABLED=0 (a static binary for distroless/static)")
	}
}
