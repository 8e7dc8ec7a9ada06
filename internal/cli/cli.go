// Package cli is the `probe` command: one-shot walks, list, validate and
// serve. cmd/probe is a thin main around Main.
package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitBroken  = 1
	ExitBadArgs = 2
)

// DefaultConfig is used when neither --config nor HOPPROBE_CONFIG is set.
const DefaultConfig = "config/allinx.yaml"

const usage = `usage:
  probe --path HOST/PATH [--config FILE] [--vantage external|internal|cluster] [--output table|json]
                 [--kube FILE | --cluster]   (also probe each pod behind the Service, each node of a NodePort)
  probe list     [--config FILE] [--vantage V]
  probe validate [--config FILE]
  probe drift    [--config FILE] [--kube FILE | --cluster] [--apisix FILE | --admin-url URL] [--output table|json]
  probe import kube --from FILE | --cluster [--config FILE]
  probe import apisix --from FILE | --admin-url URL
  probe map      [--config FILE] [--vantage V] [--format mermaid|json] [--walk=false]
  probe serve    [--config FILE] [--vantage V] [--listen ADDR] [--reload-check 10s]
                 [--kube FILE | --cluster] [--apisix FILE | --admin-url URL] [--drift-every 5m]
                 [--discover [--discover-settle 10s]]

--path walks one documented path once, prints every hop and exits 0 when
it is healthy, 1 when a hop failed, 2 on bad config or an unknown path.
`

// Main runs the command line args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	// `probe import kube`: the source is part of the command.
	if cmd == "import" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = "import "+args[0], args[1:]
	}
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	def := os.Getenv("HOPPROBE_CONFIG")
	if def == "" {
		def = DefaultConfig
	}
	cfgPath := fs.String("config", def, "topology file")
	vantage := fs.String("vantage", "", "vantage point (default: the topology's vantage)")
	path := fs.String("path", "", "walk this path once: HOST/PATH or a path ID from `probe list`")
	output := fs.String("output", "table", "table or json")
	listen := fs.String("listen", ":9115", "serve: address for /metrics, /healthz and /api/v1/paths")
	format := fs.String("format", "mermaid", "map: mermaid or json")
	kubeFile := fs.String("kube", "", "drift, serve, --path: the output of `kubectl get svc,endpointslices,nodes -A -o json`")
	cluster := fs.Bool("cluster", false, "drift, import kube, serve, --path: read the live cluster (in-cluster service account or kubeconfig) instead of a file")
	from := fs.String("from", "", "import kube|apisix: the kubectl JSON, or the APISIX Admin API export")
	apisixFile := fs.String("apisix", "", "drift: the APISIX Admin API export ({\"routes\":…,\"services\":…,\"upstreams\":…})")
	adminURL := fs.String("admin-url", "", "drift, import apisix: read the routes from this APISIX Admin API (key from $APISIX_ADMIN_KEY)")
	walkMap := fs.Bool("walk", true, "map: walk every path once to colour the graph (false: draw it uncoloured)")
	driftEvery := fs.Duration("drift-every", 5*time.Minute, "serve: how often to compare with --kube/--cluster and --apisix/--admin-url")
	discover := fs.Bool("discover", false, "serve: follow the live cluster (needs --cluster): NodePort hops on every Ready node, a hop per pod behind each Service")
	discoverSettle := fs.Duration("discover-settle", 10*time.Second, "serve: gather cluster changes this long before the paths change (at most one change per period)")
	reloadEvery := fs.Duration("reload-check", 10*time.Second, "serve: how often to look for a changed topology file (0: only on SIGHUP)")
	stalls := fs.Int("stall-intervals", exporter.DefaultStallIntervals, "serve: /healthz fails once no walk finished for this many of the shortest path interval, so that a wedged prober is restarted (0: never)")
	if err := fs.Parse(args); err != nil {
		return ExitBadArgs
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n%s", fs.Arg(0), usage)
		return ExitBadArgs
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "--output must be table or json, got %q\n", *output)
		return ExitBadArgs
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "invalid topology:\n%v\n", err)
		return ExitBadArgs
	}
	v := *vantage
	if v == "" {
		v = cfg.Vantage
	}
	switch {
	case cmd == "" && *path != "":
		return walkOnce(ctx, cfg, v, *path, *output, kubeSource{*kubeFile, *cluster}, stdout, stderr)
	case cmd == "list":
		return list(cfg, v, stdout, stderr)
	case cmd == "validate":
		paths, err := targets.Expand(cfg, v)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitBadArgs
		}
		fmt.Fprintf(stdout, "%s: ok (%d routes, %d services, %d stores, %d paths)\n", cfg.File, len(cfg.Routes), len(cfg.Services), len(cfg.Stores), len(paths))
		return ExitOK
	case cmd == "drift":
		return drift(ctx, cfg, kubeSource{*kubeFile, *cluster}, *apisixFile, *adminURL, *output, stdout, stderr)
	case cmd == "import kube":
		return importKube(ctx, cfg, kubeSource{*from, *cluster}, stdout, stderr)
	case cmd == "import apisix":
		return importAPISIX(ctx, *from, *adminURL, stdout, stderr)
	case cmd == "map":
		return drawMap(ctx, cfg, v, *format, *walkMap, stdout, stderr)
	case cmd == "serve":
		if *discover && !*cluster {
			fmt.Fprintln(stderr, "--discover follows the live cluster: give --cluster too (a kubectl export does not change)")
			return ExitBadArgs
		}
		if *discoverSettle <= 0 {
			fmt.Fprintf(stderr, "--discover-settle must be positive, got %s\n", *discoverSettle)
			return ExitBadArgs
		}
		if *stalls < 0 {
			fmt.Fprintf(stderr, "--stall-intervals must be 0 or more, got %d\n", *stalls)
			return ExitBadArgs
		}
		return serve(ctx, cfg, *vantage, *listen, *reloadEvery, *stalls,
			liveOpts{kube: kubeSource{*kubeFile, *cluster}, apisixFile: *apisixFile, adminURL: *adminURL, every: *driftEvery,
				discover: *discover, settle: *discoverSettle}, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return ExitBadArgs
	}
}

func walkOnce(ctx context.Context, cfg *config.Config, vantage, query, output string, kube kubeSource, stdout, stderr io.Writer) int {
	// With the cluster at hand, each pod behind the Service and each node
	// of a NodePort is its own hop, as `probe serve --discover` walks them.
	var seen *targets.Live
	if kube.set() {
		inv, err := readKube(ctx, kube)
		if err != nil {
			fmt.Fprintf(stderr, "reading %s: %v\n", kube, err)
			return ExitBadArgs
		}
		seen = live.LiveFrom(inv).Documented(cfg)
	}
	paths, err := targets.ResolveLive(cfg, vantage, query, seen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	w := scheduler.NewWalker(cfg.Defaults.Concurrency)
	var statuses []exporter.PathStatus
	code := ExitOK
	for _, p := range paths {
		r := w.Walk(ctx, p)
		statuses = append(statuses, exporter.StatusOf(r))
		if !r.Success {
			code = ExitBroken
		}
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"paths": statuses})
		return code
	}
	for i, st := range statuses {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		PrintTable(stdout, st)
	}
	return code
}

// PrintTable writes one path's walk as a table and its verdict.
func PrintTable(out io.Writer, st exporter.PathStatus) {
	fmt.Fprintf(out, "path %s (vantage %s, %s/%s)\n", st.ID, st.Vantage, st.Namespace, st.Service)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOP\tKIND\tTARGET\tLATENCY\tVERDICT\tERROR")
	for _, h := range st.Hops {
		lat := "-"
		if h.Verdict == exporter.VerdictOK || h.Verdict == exporter.VerdictFailed {
			lat = fmt.Sprintf("%.1fms", h.LatencyMS)
		}
		verdict := h.Verdict
		if h.FirstFail {
			verdict += " (first)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Kind, h.Target, lat, verdict, oneLine(h.Error))
	}
	_ = tw.Flush()
	switch st.Verdict {
	case exporter.VerdictOK:
		fmt.Fprintf(out, "verdict: OK in %.1fms\n", st.DurationMS)
	default:
		reason := ""
		for _, h := range st.Hops {
			if h.FirstFail {
				reason = oneLine(h.Error)
			}
		}
		fmt.Fprintf(out, "verdict: BROKEN, first failing hop: %s: %s\n", st.FirstFailingHop, reason)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func list(cfg *config.Config, vantage string, stdout, stderr io.Writer) int {
	paths, err := targets.Expand(cfg, vantage)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	for _, p := range paths {
		fmt.Fprintf(stdout, "%s\t[%s] %s/%s every %s\n", p.ID, p.Kind, p.Namespace, p.Service, p.Interval)
		for _, h := range p.Hops {
			note := ""
			if h.Skip != "" {
				note = "  (skipped: " + h.Skip + ")"
			}
			fmt.Fprintf(stdout, "  %-22s %-10s %s%s\n", h.Name, h.Kind, h.Describe(), note)
		}
	}
	return ExitOK
}

// drawMap prints the topology graph, coloured by one walk of every path
// (or uncoloured with --walk=false), as Mermaid or JSON.
func drawMap(ctx context.Context, cfg *config.Config, vantage, format string, walk bool, stdout, stderr io.Writer) int {
	if format != "mermaid" && format != "json" {
		fmt.Fprintf(stderr, "--format must be mermaid or json, got %q\n", format)
		return ExitBadArgs
	}
	paths, err := targets.Expand(cfg, vantage)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	statuses := make([]exporter.PathStatus, len(paths))
	w := scheduler.NewWalker(cfg.Defaults.Concurrency)
	var wg sync.WaitGroup
	for i, p := range paths {
		if !walk {
			statuses[i] = exporter.Pending(p)
			continue
		}
		wg.Go(func() { statuses[i] = exporter.StatusOf(w.Walk(ctx, p)) })
	}
	wg.Wait()
	g := exporter.GraphOf(paths, statuses)
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(g)
		return ExitOK
	}
	if err := g.WriteMermaid(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	return ExitOK
}

// kubeClient connects to the live cluster; tests put a fake API server
// in its place.
var kubeClient = live.KubeClient

// kubeSource is where the live cluster is read from: a kubectl export
// file, or the API itself.
type kubeSource struct {
	file    string
	cluster bool
}

func (k kubeSource) set() bool { return k.file != "" || k.cluster }

func (k kubeSource) String() string {
	if k.cluster {
		return "the live cluster"
	}
	return k.file
}

func readKube(ctx context.Context, src kubeSource) (*live.KubeInventory, error) {
	if src.cluster {
		cs, err := kubeClient()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return live.KubeInventoryFrom(ctx, cs)
	}
	if src.file == "" {
		return nil, fmt.Errorf("give the cluster as a file (kubectl get svc,endpointslices,nodes -A -o json > cluster.json) or --cluster")
	}
	f, err := os.Open(src.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inv, err := live.ReadKubeList(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.file, err)
	}
	return inv, nil
}

// drift prints every difference between the documented topology and the
// cluster and/or APISIX; exit 1 when there is any.
func drift(ctx context.Context, cfg *config.Config, kube kubeSource, apisixFile, adminURL, output string, stdout, stderr io.Writer) int {
	if !kube.set() && apisixFile == "" && adminURL == "" {
		fmt.Fprintln(stderr, "give the live side: --kube FILE (kubectl get svc,endpointslices,nodes -A -o json) and/or --apisix FILE or --admin-url URL")
		return ExitBadArgs
	}
	var items []targets.DriftItem
	var against []string
	if kube.set() {
		inv, err := readKube(ctx, kube)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitBadArgs
		}
		items = append(items, live.KubeDrift(cfg, inv)...)
		against = append(against, kube.String())
	}
	if apisixFile != "" || adminURL != "" {
		routes, src, err := readAPISIX(ctx, apisixFile, adminURL)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitBadArgs
		}
		items = append(items, live.RouteDrift(cfg, routes)...)
		against = append(against, src)
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"drift": append([]targets.DriftItem{}, items...)})
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tSUBJECT\tDETAIL")
		for _, d := range items {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Kind, d.Subject, d.Detail)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d difference(s) between %s and %s\n", len(items), cfg.File, strings.Join(against, " + "))
	}
	if len(items) > 0 {
		return ExitBroken
	}
	return ExitOK
}

// readAPISIX reads the routes from an export file or the Admin API.
func readAPISIX(ctx context.Context, file, adminURL string) ([]live.APISIXRoute, string, error) {
	var e *live.APISIXExport
	var err error
	src := file
	if adminURL != "" {
		src = adminURL
		a := &live.AdminClient{Base: adminURL, Key: os.Getenv("APISIX_ADMIN_KEY"),
			UseProxy: os.Getenv("HOPPROBE_ADMIN_USE_PROXY") == "1", Log: slog.Default()}
		e, err = a.Fetch(ctx)
	} else {
		var f *os.File
		if f, err = os.Open(file); err == nil {
			defer f.Close()
			e, err = live.ReadAPISIXExport(f)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	routes, err := e.Resolve()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	return routes, src, nil
}

// importAPISIX prints APISIX's routes as topology routes to merge by hand.
func importAPISIX(ctx context.Context, from, adminURL string, stdout, stderr io.Writer) int {
	if from == "" && adminURL == "" {
		fmt.Fprintln(stderr, "give --from FILE (the Admin API export) or --admin-url URL")
		return ExitBadArgs
	}
	routes, src, err := readAPISIX(ctx, from, adminURL)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	type route struct {
		Hosts   []string `yaml:"hosts"`
		Path    string   `yaml:"path"`
		Service string   `yaml:"service"`
	}
	var out []route
	for _, r := range routes {
		out = append(out, route{Hosts: []string{r.Host}, Path: r.Path, Service: r.Service})
	}
	fmt.Fprintf(stdout, "# Imported from %s: one route per host and URI. Merge by hand:\n# protocols and probe expectations are not in APISIX.\n", src)
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"routes": out}); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	return ExitOK
}

// importKube prints the live Services and Nodes of the namespaces the
// topology documents as topology YAML, for an operator to merge.
func importKube(ctx context.Context, cfg *config.Config, from kubeSource, stdout, stderr io.Writer) int {
	inv, err := readKube(ctx, from)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	var namespaces []string
	for _, s := range cfg.Services {
		if !slices.Contains(namespaces, s.Namespace) {
			namespaces = append(namespaces, s.Namespace)
		}
	}
	svcs, nodes := live.ImportKube(inv, namespaces)
	fmt.Fprintf(stdout, "# Imported from %s: Services of %s and the Nodes. Merge by hand:\n# roles, protocols and data-store edges are not in the cluster.\n", from, strings.Join(namespaces, ", "))
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"services": svcs, "nodes": nodes}); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	return ExitOK
}
