package cli_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/testkit"
)

// headless is a tab of a real headless Chromium for one test, which
// skips loudly where Chromium is missing (and fails in CI, whose .ci/run
// installs it); what names what was not tested then.
func headless(t *testing.T, what string) context.Context {
	t.Helper()
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must have chromium (.ci/run installs it)")
		}
		t.Skipf("SKIPPED LOUDLY: chromium is not installed; %s was not tested in a browser", what)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

// The live map in a real headless Chromium: every component of the demo
// is drawn, and stopping one stand-in turns its node red.
func TestMapPageTurnsAStoppedComponentRed(t *testing.T) {
	cfgPath, d := startDemo(t)
	ctx := headless(t, "the map page")
	listen := serveFast(t, cfgPath, &testkit.Buffer{})
	// The node's health as the page drew it ("" while it is not drawn).
	health := func(id string) string {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(document.querySelector('g[data-node="`+id+`"]') || {dataset: {}}).dataset.health || ""`))
		if err != nil {
			t.Fatalf("reading %s on the map: %v", id, err)
		}
		return h
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+listen+"/map")); err != nil {
		t.Fatalf("opening the map: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`g[data-node="futuresnewredis"]`))); err != nil {
		t.Fatalf("the map never drew futuresnewredis: %v", err)
	}
	// Every component of the demo topology is a node.
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('g[data-node]')].map(g => g.dataset.node)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dns", "cloudfront", "alb-public", "apisix", "morph/morph-futuresws-app", "futuresnewredis", "spotdb", "spotredis", "kafkanew", "etcdnew"} {
		if !strings.Contains(" "+strings.Join(drawn, " ")+" ", " "+want+" ") {
			t.Errorf("the map lacks %s (drew %v)", want, drawn)
		}
	}
	waitHealth := func(id, want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			if got := health(id); got == want {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s stayed %s on the map, want %s", id, got, want)
			}
		}
	}
	waitHealth("futuresnewredis", "ok")
	if err := d.Stop("futuresnewredis"); err != nil {
		t.Fatal(err)
	}
	waitHealth("futuresnewredis", "failed")
	if h := health("apisix"); h != "ok" {
		t.Errorf("apisix turned %s though only the Redis below it was stopped", h)
	}
}

// probe map prints the same graph as Mermaid, coloured by one walk.
func TestMapPrintsMermaidWithHealthClasses(t *testing.T) {
	cfgPath, d := startDemo(t)
	if err := d.Stop("futuresnewredis"); err != nil {
		t.Fatal(err)
	}
	code, out, errs := probe(t, "map", "--config", cfgPath, "--format", "mermaid")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"flowchart LR", `n_futuresnewredis["futuresnewredis"]:::failed`, `n_apisix["apisix"]:::ok`,
		"n_apisix --> n_morph_morph_futuresws_app", "n_morph_morph_futuresws_app --> n_futuresnewredis", "classDef failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("mermaid lacks %q:\n%s", want, out)
		}
	}
}
