package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/testkit"
)

// The live map in a real headless Chromium: every component of the demo
// is drawn, and stopping one stand-in turns its node red.
func TestMapPageTurnsAStoppedComponentRed(t *testing.T) {
	cfgPath, d := startDemo(t)
	ctx := testkit.Headless(t, "the map page")
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
	// Each box says its verdict and latency under its name.
	sub, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('g[data-node="apisix"] text.sub').textContent`))
	if err != nil || !regexp.MustCompile(`^ok · [0-9.]+ ms$`).MatchString(sub) {
		t.Errorf("apisix's box reads %q (%v), want its verdict and latency", sub, err)
	}
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
