package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/demo"
)

// Help and version behave as kubectl's and promtool's do: on stdout,
// exit 0, one help per command with its own flags and their defaults.
func TestHelpAndVersionGoToStdoutAndExitZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {}} {
		code, out, errs := probe(t, args...)
		if code != cli.ExitOK || !strings.Contains(out, "probe serve") || errs != "" {
			t.Errorf("probe %v: exit %d, stdout %q, stderr %q; want the help on stdout, exit 0", args, code, out, errs)
		}
	}
	for _, args := range [][]string{{"serve", "--help"}, {"help", "serve"}} {
		code, out, _ := probe(t, args...)
		for _, want := range []string{"--listen string", `(default ":9115")`, "--reload-check", "--config FILE", "$HOPPROBE_CONFIG", "--discover-settle"} {
			if code != cli.ExitOK || !strings.Contains(out, want) {
				t.Errorf("probe %v: exit %d; its help lacks %q:\n%s", args, code, want, out)
			}
		}
		if strings.Contains(out, "--path string") {
			t.Errorf("probe %v lists the root's own --path flag:\n%s", args, out)
		}
	}
	code, out, _ := probe(t, "--version")
	if code != cli.ExitOK || !strings.HasPrefix(out, "probe ") || !strings.Contains(out, "built with go") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// Global flags work before or after the command; unknown commands and
// flags are exit 2 on stderr.
func TestGlobalFlagsGoAnywhereAndMistakesAreExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--config", "../../config/demo.yaml", "validate"},
		{"validate", "--config", "../../config/demo.yaml"},
		{"--config=../../config/demo.yaml", "--vantage", "external", "list"},
	} {
		if code, out, errs := probe(t, args...); code != cli.ExitOK || out == "" {
			t.Errorf("probe %v: exit %d, stderr %q", args, code, errs)
		}
	}
	for _, args := range [][]string{{"nosuch"}, {"list", "--nosuch"}, {"--path"}, {"--output", "yaml", "--path", "x"},
		{"serve", "--config", "../../config/demo.yaml", "--replicas-dns", "hopprobe-replicas", "--pod-ip", "pod-a"},
		{"serve", "--config", "../../config/demo.yaml", "--shard", "2/2"}, {"serve", "--config", "../../config/demo.yaml", "--shard", "half"}} {
		code, out, errs := probe(t, args...)
		if code != cli.ExitBadArgs || out != "" || !strings.Contains(errs, "error: ") {
			t.Errorf("probe %v: exit %d, stdout %q, stderr %q; want exit 2 and the reason on stderr", args, code, out, errs)
		}
	}
	// From another directory the default file is not found: say so.
	t.Chdir(t.TempDir())
	t.Setenv("HOPPROBE_CONFIG", "")
	if code, _, errs := probe(t, "list"); code != cli.ExitBadArgs || !strings.Contains(errs, "give --config FILE or set $HOPPROBE_CONFIG") {
		t.Errorf("default config missing: exit %d, %q", code, errs)
	}
}

// Shell completion for bash and zsh, and --path completes path IDs.
func TestShellCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		if code, out, _ := probe(t, "completion", sh); code != cli.ExitOK || !strings.Contains(out, "probe") || len(out) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, code, len(out))
		}
	}
	code, out, _ := probe(t, "__complete", "--config", "../../config/allinx.yaml", "--path", "api.allinpro.com/fut")
	if code != cli.ExitOK || !strings.Contains(out, "api.allinpro.com/futures/ws*") {
		t.Errorf("--path completion: exit %d:\n%s", code, out)
	}
}

// Tables end their lines without padding.
func TestTablesHaveNoTrailingSpaces(t *testing.T) {
	_, out, _ := probe(t, "drift", "--config", "../../config/allinx.yaml", "--kube", "../../live/testdata/kube/drifted.json")
	if out == "" {
		t.Fatal("drift printed nothing")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("trailing spaces: %q", line)
		}
	}
}

// Where a kubectl user would look: a mistyped command suggests the
// nearest, a bad flag points to that command's help, `probe version`
// is `probe --version`, every command shows an example, and argument
// names in the help are words (a 60-column flags column was the price of
// a backquoted command line).
func TestTheCommandLineHelpsLikeKubectl(t *testing.T) {
	code, _, errs := probe(t, "lst")
	if code != cli.ExitBadArgs || !strings.Contains(errs, "Did you mean this?\n\tlist") {
		t.Errorf("probe lst: exit %d, %q", code, errs)
	}
	code, _, errs = probe(t, "serve", "--bogus")
	if code != cli.ExitBadArgs || !strings.Contains(errs, "See 'probe serve --help' for usage.") {
		t.Errorf("probe serve --bogus: exit %d, %q", code, errs)
	}
	_, v1, _ := probe(t, "--version")
	code, v2, _ := probe(t, "version")
	if code != cli.ExitOK || v1 != v2 || !strings.HasPrefix(v2, "probe ") {
		t.Errorf("probe version: exit %d, %q; --version says %q", code, v2, v1)
	}
	for _, c := range [][]string{{}, {"list"}, {"validate"}, {"drift"}, {"import"}, {"import", "kube"}, {"import", "apisix"}, {"map"}, {"serve"}, {"version"}} {
		_, out, _ := probe(t, append(c, "--help")...)
		if !strings.Contains(out, "Examples:\n  probe ") && !strings.Contains(out, "Examples:\n  kubectl ") {
			t.Errorf("probe %v --help has no example", c)
		}
		for line := range strings.Lines(out) {
			if f, _, ok := strings.Cut(strings.TrimSpace(line), "   "); ok && strings.HasPrefix(f, "-") && len(f) > 32 {
				t.Errorf("probe %v --help: the flag %q makes a wide flags column", c, f)
			}
		}
		if strings.Count(out, "HOPPROBE_CONFIG") > 1 || strings.Count(out, "config/allinx.yaml") > 1 {
			t.Errorf("probe %v --help says --config's default more than once", c)
		}
	}
}

// A mistyped path that only a catch-all route matches is exit 2 with the
// route that was meant, before anything is walked; --allow-catch-all
// walks the catch-all (here the demo topology, loopback only, without
// its stand-ins: a failed walk, exit 1).
func TestAMistypedPathSuggestsTheRoute(t *testing.T) {
	code, out, errs := probe(t, "--config", "../../config/demo.yaml", "--path", "api.allinpro.com/futurs/ws")
	if code != cli.ExitBadArgs || out != "" || !strings.Contains(errs, "did you mean api.allinpro.com/futures/ws?") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = probe(t, "--config", relocatedDemo(t), "--path", "api.allinpro.com/futurs/ws", "--allow-catch-all", "--output", "json")
	if code == cli.ExitBadArgs || !strings.Contains(out, `"id": "api.allinpro.com/*"`) {
		t.Errorf("--allow-catch-all: exit %d:\n%s", code, out)
	}
}

// A broken walk reads on a 120-column terminal: one line per hop, the
// error cut to fit with its cause kept, not repeated on the verdict
// line; -v prints each error whole. (The demo topology without its
// stand-ins: loopback only, every hop refused.)
func TestABrokenWalkFitsOneTerminalLinePerHop(t *testing.T) {
	// A copy on free ports: nothing else (a demo beside the tests)
	// answers there.
	cfg := relocatedDemo(t)
	code, out, _ := probe(t, "--config", cfg, "--path", "api.allinpro.com/futures/ws")
	if code != cli.ExitBroken {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for line := range strings.Lines(out) {
		if n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n")); n > 120 {
			t.Errorf("a line of %d columns: %q", n, line)
		}
	}
	if !strings.Contains(out, "connection refused\n") || !strings.Contains(out, "verdict: BROKEN, first failing hop: dns\n") {
		t.Errorf("the cause is not kept, or the verdict line is not bare:\n%s", out)
	}
	_, verbose, _ := probe(t, "--config", cfg, "--path", "api.allinpro.com/futures/ws", "-v")
	if !strings.Contains(verbose, "    error: resolver 127.0.0.1:") || !strings.Contains(verbose, " did not answer for api.allinpro.com over udp") {
		t.Errorf("-v does not print the whole error:\n%s", verbose)
	}
}

// relocatedDemo writes the demo topology on free loopback ports, its
// stand-ins not started, and returns the file.
func relocatedDemo(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../config/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := demo.Relocate(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.yaml")
	if err := os.WriteFile(path, moved, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The binary make build makes names its module version and VCS revision
// (Go's build information), whatever GOFLAGS says.
func TestTheBuiltBinaryNamesItsRevision(t *testing.T) {
	if !inGit() {
		t.Skip("SKIPPED LOUDLY: not a git work tree; a build without one has no revision to name")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(probeBinary(t), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "(revision " + strings.TrimSpace(string(head)); !strings.Contains(string(out), want) {
		t.Errorf("--version says %q, want %q in it", out, want)
	}
}
