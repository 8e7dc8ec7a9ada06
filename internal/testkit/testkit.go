// Package testkit holds what several packages' tests share: a log buffer
// that servers write while the test reads, and the shipped topology.
package testkit

import (
	"context"
	"os/exec"
	"time"

	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/allinx/hopprobe/config"
)

// Buffer collects a server's log lines while the test reads them.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Allinx loads the shipped production topology from a package directory
// one level below the repository's root.
func Allinx(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Load("../config/allinx.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Generated writes and loads a topology shaped like the shipped one but
// with services services spread over its three namespaces (half of them
// behind a route, one in five calling data stores), for tests of what
// must stay readable at the exchange's full size. Every address is on
// loopback.
func Generated(t testing.TB, services int) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString(`vantage: cluster
entries:
  - name: public
    hops:
      - {name: cloudfront, scheme: https, address: "127.0.0.1:9"}
      - {name: alb-public, address: "127.0.0.1:9"}
      - {name: apisix, address: "127.0.0.1:9"}
  - name: internal
    hops:
      - {name: alb-internal, address: "127.0.0.1:9"}
      - {name: apisix, address: "127.0.0.1:9"}
  - name: awf-spa-nlb
    hops:
      - {name: cloudfront, scheme: https, address: "127.0.0.1:9"}
      - {name: awf-spa-nlb, address: "127.0.0.1:9"}
stores:
`)
	stores := []string{"spotdb:postgres", "futuresnewdb:postgres", "spotredis:redis", "futuresnewredis:redis", "kafka:kafka", "kafkanew:kafka", "etcdnew:etcd"}
	for _, s := range stores {
		name, kind, _ := strings.Cut(s, ":")
		fmt.Fprintf(&b, "  - {name: %s, kind: %s, address: \"127.0.0.1:9\"}\n", name, kind)
	}
	namespaces := []string{"landry", "morph", "moth"}
	var routes strings.Builder
	b.WriteString("services:\n")
	for i := range services {
		// Names as long as the documents' longest, and some longer.
		ns := namespaces[i%len(namespaces)]
		name := fmt.Sprintf("%s-%s-%02d", ns, []string{"spotapi-web", "brokercron-sync-user-relationship", "ces-accesshttp", "nexs-usercenter", "futuresws-app"}[i%5], i)
		deps := ""
		if i%5 == 0 {
			deps = fmt.Sprintf(", depends_on: [%s]", strings.Split(stores[i%len(stores)], ":")[0])
		}
		fmt.Fprintf(&b, "  - {name: %s, namespace: %s, type: ClusterIP, cluster_ip: 127.0.0.1, ports: [{port: %d, protocol: http}]%s}\n", name, ns, 20000+i, deps)
		if i%2 == 0 {
			entry := []string{"public", "internal", "awf-spa-nlb"}[i%3]
			fmt.Fprintf(&routes, "  - {hosts: [h%d.test], path: /*, service: %s/%s:%d, entries: [%s]}\n", i, ns, name, 20000+i, entry)
		}
	}
	b.WriteString("routes:\n" + routes.String())
	file := filepath.Join(t.TempDir(), "generated.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("the generated topology does not load: %v\n%s", err, b.String())
	}
	return cfg
}

// Headless is a tab of a real headless Chromium for one test, which
// skips loudly where Chromium is missing (and fails in CI, whose .ci/run
// installs it); what names what was not tested then.
func Headless(t *testing.T, what string) context.Context {
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
