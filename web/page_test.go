package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/web"
)

// The hop health page in a real headless Chromium with 100 paths in three
// namespaces: the namespace with broken paths comes first and its broken
// paths lead it, and the filter box narrows the rows.
func TestHopHealthPageSortsGroupsAndFilters(t *testing.T) {
	var paths []*targets.Path
	var walks []scheduler.PathResult
	for i := range 100 {
		ns := []string{"landry", "morph", "moth"}[i%3]
		p := &targets.Path{ID: fmt.Sprintf("svc/%s/app-%03d", ns, i), Kind: targets.PathService, Vantage: "cluster", Namespace: ns,
			Service: fmt.Sprintf("app-%03d", i), Hops: []targets.Hop{{Name: "port-8080", Kind: hop.KindHTTP, Role: targets.RoleService}}}
		broken := ns == "moth" && i > 90
		r := scheduler.PathResult{Path: p, Success: !broken, FirstFailing: -1, Start: time.Now(),
			Hops: []scheduler.HopResult{{Result: hop.Result{Success: !broken, Duration: time.Millisecond}}}}
		if broken {
			r.FirstFailing, r.Hops[0].Error = 0, "connection refused"
		}
		paths, walks = append(paths, p), append(walks, r)
	}
	b := status.NewBoard(paths)
	for _, w := range walks {
		b.Observe(w)
	}
	srv := httptest.NewServer(web.Handler(b, http.NotFoundHandler()))
	defer srv.Close()
	ctx := testkit.Headless(t, "the hop health page")
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.CSS(`tr.path`))); err != nil {
		t.Fatalf("the page never drew a path: %v", err)
	}
	rows := func() []string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('tr.path')].map(r => r.dataset.path)`))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	all := rows()
	if len(all) != 100 {
		t.Fatalf("%d rows, want 100", len(all))
	}
	groups, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('tr.group th')].map(th => th.firstChild.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(groups, ",") != "moth,landry,morph" {
		t.Errorf("namespace groups in the order %v, want the broken one (moth) first, then by name", groups)
	}
	for i, id := range all[:3] {
		if !strings.HasPrefix(id, "svc/moth/app-09") {
			t.Errorf("row %d is %s; the three broken moth paths should lead", i, id)
		}
	}
	// Typed into the box: the page listens to its input event.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const f = document.getElementById('filter');
		f.value = 'landry app-00'; f.dispatchEvent(new Event('input')); return true })()`)); err != nil {
		t.Fatal(err)
	}
	var shown []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if shown = rows(); len(shown) < 100 {
			break
		}
	}
	// landry holds i ≡ 0 (mod 3): app-000, 003, 006, 009.
	if strings.Join(shown, ",") != "svc/landry/app-000,svc/landry/app-003,svc/landry/app-006,svc/landry/app-009" {
		t.Errorf("the filter 'landry app-00' shows %v", shown)
	}
}
