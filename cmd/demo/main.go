// Command demo starts the demo topology's stand-ins on loopback and runs
// `probe serve` against it in the same process: `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/cli"
	"github.com/allinx/hopprobe/internal/demo"
	"github.com/allinx/hopprobe/probes"
)

func main() {
	cfgPath := flag.String("config", "config/demo.yaml", "demo topology")
	listen := flag.String("listen", "127.0.0.1:9115", "address for /metrics and /api/v1/paths")
	edge := flag.String("edge", demo.EdgeDocumented, "how the demo's CloudFront sends requests on: documented (ALB → APISIX), bypass (straight to the Service) or nlb (through awf-spa-nlb where a route documents it)")
	breakProto := flag.String("break-protocol", "none", "an HTTP version the demo's CloudFront stops speaking: h2 (ALPN offers only http/1.1), h3 (UDP dropped) or none")
	flag.Parse()
	probes.RegisterKinds()
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "invalid demo topology:\n%v\n", err)
		os.Exit(cli.ExitBadArgs)
	}
	d, err := demo.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer d.Close()
	if err := d.SetEdge(*edge); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.ExitBadArgs)
	}
	if err := d.Break(*breakProto); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.ExitBadArgs)
	}
	fmt.Printf("demo stand-ins up: %v\n", d.Names())
	fmt.Printf("edge: %s (bin/demo --edge documented|bypass|nlb); broken HTTP version: %s (--break-protocol h2|h3|none)\n", d.Edge(), *breakProto)
	for _, page := range []struct{ what, path string }{
		{"hop health", "/"}, {"topology map", "/map"}, {"metrics", "/metrics"}, {"paths (JSON)", "/api/v1/paths"},
		{"topology (JSON)", "/api/v1/topology"}, {"liveness", "/healthz"}, {"readiness", "/readyz"},
	} {
		fmt.Printf("  %-16s http://%s%s\n", page.what, *listen, page.path)
	}
	// The built binary, not go run: go run turns every non-zero exit into
	// 1, and the CLI's 2 (bad configuration, unknown path) would read as
	// 1 (a hop failed).
	fmt.Printf("one-shot walk: bin/probe --config %s --path api.allinpro.com/futures/ws\n", *cfgPath)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := cli.Main(ctx, []string{"serve", "--config", *cfgPath, "--listen", *listen}, os.Stdout, os.Stderr)
	d.Close()
	os.Exit(code)
}
