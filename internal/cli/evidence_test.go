package cli_test

import (
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/web"
)

// history reads /api/v1/paths/{id}.
func history(t *testing.T, listen, id string) status.PathHistory {
	t.Helper()
	var h status.PathHistory
	body := get(t, "http://"+listen+"/api/v1/paths/"+url.PathEscape(id))
	_ = json.Unmarshal([]byte(body), &h)
	return h
}

// waitChain waits for a path's last walk to show the chain verdict.
func waitChain(t *testing.T, listen, id, verdict string) status.PathHistory {
	t.Helper()
	var h status.PathHistory
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		h = history(t, listen, id)
		if c := h.Status.Chain; c != nil && c.Verdict == verdict {
			return h
		}
	}
	t.Fatalf("%s: the chain never read %s; last status %+v", id, verdict, h.Status.Chain)
	return h
}

// The demo's edge sends requests the documented way, then straight to
// the Service past APISIX, then through the NLB: the chain attestation,
// its metrics, the walk history with its evidence, the change events and
// the one-shot CLI each say which way the answer came.
func TestChainAttestationFollowsTheEdge(t *testing.T) {
	cfgPath, d := startDemo(t)
	logs := &testkit.Buffer{}
	listen := serveFast(t, cfgPath, logs)
	const api, www, wwwNLB = "api.allinpro.com/*", "www.allinpro.com/*", "www.allinpro.com/*@awf-spa-nlb"

	// Documented: CloudFront → ALB → APISIX.
	h := waitChain(t, listen, api, chain.Matched)
	if got := chain.String(h.Status.Chain.Observed); got != "cloudfront>apisix" || h.Status.Chain.Hop != "cloudfront" {
		t.Errorf("documented way: observed %s at %s", got, h.Status.Chain.Hop)
	}
	waitMetric(t, listen, `hopprobe_path_chain_info{expected="cloudfront>apisix",observed="cloudfront>apisix",path="api.allinpro.com/*",vantage="cluster",verdict="matched"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_path_chain_mismatch{path="api.allinpro.com/*",vantage="cluster"}`, func(v float64) bool { return v == 0 })
	waitChain(t, listen, www, chain.Matched)
	waitChain(t, listen, wwwNLB, chain.Alternate)

	// The walk history keeps each hop's evidence.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if h = history(t, listen, api); len(h.Walks) >= 2 {
			break
		}
	}
	if len(h.Walks) < 2 || h.Keep != 20 {
		t.Fatalf("history of %s: %d walks, keep %d", api, len(h.Walks), h.Keep)
	}
	var cf status.HopStatus
	for _, hop := range h.Walks[0].Hops {
		if hop.Name == "cloudfront" {
			cf = hop
		}
	}
	for _, k := range []string{"header.via", "header.x-amz-cf-pop", "header.server", "cert.sha256", "cert.subject", "remote", "trace_id", "status"} {
		if cf.Details[k] == "" {
			t.Errorf("the cloudfront hop's evidence lacks %s: %v", k, cf.Details)
		}
	}
	if resp := get(t, "http://"+listen+"/api/v1/paths/no.such/path"); !strings.Contains(resp, "no path") {
		t.Errorf("an unknown path's history: %q", resp)
	}

	// Bypass: CloudFront straight to the Service.
	if err := d.SetEdge(demo.EdgeBypass); err != nil {
		t.Fatal(err)
	}
	h = waitChain(t, listen, api, chain.Mismatch)
	if want := "cloudfront answered without passing apisix"; h.Status.Chain.Detail != want {
		t.Errorf("bypass: %q, want %q", h.Status.Chain.Detail, want)
	}
	waitMetric(t, listen, `hopprobe_path_chain_mismatch{path="api.allinpro.com/*",vantage="cluster"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_path_chain_info{expected="cloudfront>apisix",observed="cloudfront",path="api.allinpro.com/*",vantage="cluster",verdict="mismatch"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, listen, `hopprobe_hop_evidence_changes_total{change="chain",hop="cloudfront",path="api.allinpro.com/*",vantage="cluster"}`, func(v float64) bool { return v >= 1 })
	h = history(t, listen, api)
	found := false
	for _, ev := range h.Events {
		found = found || (ev.Change == "chain" && ev.From == "cloudfront>apisix" && ev.To == "cloudfront")
	}
	if !found {
		t.Errorf("no chain change event: %+v", h.Events)
	}
	// A bypass is a state of its own, as loud as a failure: the path's
	// verdict, the component on the map, the log.
	if h.Status.Verdict != status.VerdictBypassed || !slices.Equal(h.Status.Bypassed, []string{"apisix"}) {
		t.Errorf("bypass: path verdict %q, bypassed %v; want bypassed [apisix]", h.Status.Verdict, h.Status.Bypassed)
	}
	var g web.Graph
	_ = json.Unmarshal([]byte(get(t, "http://"+listen+"/api/v1/topology")), &g)
	for _, n := range g.Nodes {
		if n.ID == "apisix" && n.Health != status.VerdictBypassed {
			t.Errorf("the map shows apisix %q under bypass, want bypassed", n.Health)
		}
	}
	if !strings.Contains(logs.String(), "gateway bypassed") || !strings.Contains(logs.String(), "skipped=apisix") {
		t.Errorf("no gateway bypassed line in the log:\n%s", logs.String())
	}
	// The one-shot CLI says the same, with an exit code of its own.
	code, out, errs := probe(t, "--config", cfgPath, "--path", "api.allinpro.com/", "-v")
	if code != cli.ExitBypassed || !strings.Contains(out, "chain: mismatch (expected cloudfront>apisix, observed cloudfront, read at cloudfront): cloudfront answered without passing apisix") ||
		!strings.Contains(out, "verdict: BYPASSED: every hop answered, but the answer skipped apisix") ||
		!strings.Contains(out, "evidence:") || !strings.Contains(out, "header.via: 1.1 d3demo.cloudfront.net (CloudFront)") {
		t.Errorf("probe --path -v under bypass: exit %d, want %d\n%s%s", code, cli.ExitBypassed, out, errs)
	}

	// NLB: www's CloudFront uses the NLB origin; the api routes, which
	// document no NLB, go the documented way again.
	if err := d.SetEdge(demo.EdgeNLB); err != nil {
		t.Fatal(err)
	}
	waitChain(t, listen, wwwNLB, chain.Matched)
	h = waitChain(t, listen, www, chain.Alternate)
	if !strings.Contains(h.Status.Chain.Detail, "entry awf-spa-nlb") {
		t.Errorf("www through the NLB: %q", h.Status.Chain.Detail)
	}
	waitChain(t, listen, api, chain.Matched)
	code, out, _ = probe(t, "--config", cfgPath, "--path", "www.allinpro.com/")
	if code != cli.ExitOK || !strings.Contains(out, "chain: alternative (expected cloudfront>apisix, observed cloudfront, read at cloudfront): the answer came the way of entry awf-spa-nlb (cloudfront), not this path's") ||
		!strings.Contains(out, "chain: matched (expected cloudfront, observed cloudfront, read at cloudfront): the answer came this path's way, not entry public's") {
		t.Errorf("probe --path www.allinpro.com/ through the NLB: exit %d\n%s", code, out)
	}
}

// The hop health page on the demo, in headless Chromium: each hop has a
// sparkline of its recent latencies, a route path its chain badge, and a
// click on a hop opens its evidence and previous walks.
func TestHopHealthPageShowsEvidence(t *testing.T) {
	cfgPath, _ := startDemo(t)
	listen := serveFast(t, cfgPath, io.Discard)
	ctx := testkit.Headless(t, "the hop health page's evidence")
	// Two walks at least, so that a sparkline has a line.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && len(history(t, listen, "api.allinpro.com/*").Walks) < 3; time.Sleep(200 * time.Millisecond) {
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+listen+"/")); err != nil {
		t.Fatal(err)
	}
	cf := `tr[data-path="api.allinpro.com/*"] div.hop[data-hop="cloudfront"]`
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(cf+` svg.spark polyline`))); err != nil {
		t.Fatalf("no sparkline on the cloudfront hop: %v", err)
	}
	points, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('`+cf+` svg.spark polyline').getAttribute('points')`))
	if err != nil || len(strings.Fields(points)) < 2 {
		t.Errorf("the sparkline has points %q (%v), want one per kept walk", points, err)
	}
	badge, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr[data-path="api.allinpro.com/*"] .chain').textContent`))
	if err != nil || badge != "chain matched" {
		t.Errorf("chain badge %q (%v)", badge, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS(cf))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`#panel.open table.evidence`))); err != nil {
		t.Fatalf("clicking the hop opened no evidence: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('panel').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cloudfront on api.allinpro.com/*", "header.via", "(CloudFront)", "cert.sha256", "trace_id", "previous walks", "chain matched"} {
		if !strings.Contains(text, want) {
			t.Errorf("the evidence panel lacks %q:\n%s", want, text)
		}
	}
}
