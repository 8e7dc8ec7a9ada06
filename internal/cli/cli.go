// Package cli is the `probe` command: one-shot walks, list, validate and
// serve. cmd/probe is a thin main around Main.
package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/promslog"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/buildinfo"
	"github.com/allinx/hopprobe/live"
	"github.com/allinx/hopprobe/probes"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/status"
	"github.com/allinx/hopprobe/targets"
	"github.com/allinx/hopprobe/web"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitBroken  = 1
	ExitBadArgs = 2
	// ExitBypassed: every hop answered, but the answer skipped a
	// documented component (the gateway and its plugins). A broken path
	// is still exit 1.
	ExitBypassed = 3
)

// DefaultConfig is used when neither --config nor HOPPROBE_CONFIG is set.
const DefaultConfig = "config/allinx.yaml"

// Main runs the command line args (without the program name) and returns
// the exit code: 0 healthy (or help), 1 a hop failed or drift was found,
// 2 bad arguments or configuration, 3 a path answered past its gateway.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	probes.RegisterKinds()
	code := ExitOK
	root := newRoot(&code)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		// Flag and argument errors, as kubectl reports them: the help to
		// read is the command's own.
		at := "probe"
		if cmd != nil {
			at = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "error: %v\nSee '%s --help' for usage.\n", err, at)
		return ExitBadArgs
	}
	return code
}

// unknownCommand is the root's argument check: probe takes no argument,
// so a word is a mistyped command, and the nearest ones are suggested.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	config, vantage string
	source          string // --source-address
}

// load reads the topology; a file that does not load is exit 2 with its
// file:line reasons.
func (g *globals) load(cmd *cobra.Command, code *int) (*config.Config, string, bool) {
	if g.source != "" {
		src, err := netip.ParseAddr(g.source)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "--source-address %q is not an IP address\n", g.source)
			*code = ExitBadArgs
			return nil, "", false
		}
		probes.SetSourceAddress(src)
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "invalid topology:\n%v\n", err)
		if errors.Is(err, fs.ErrNotExist) && g.config == DefaultConfig {
			fmt.Fprintf(cmd.ErrOrStderr(), "(%s is relative to the current directory; give --config FILE or set $HOPPROBE_CONFIG)\n", DefaultConfig)
		}
		*code = ExitBadArgs
		return nil, "", false
	}
	// A problem of one store does not stop the rest: say it, go on.
	for _, p := range cfg.Problems {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", p)
	}
	v := g.vantage
	if v == "" {
		v = cfg.Vantage
	}
	return cfg, v, true
}

func defaultConfig() string {
	if env := os.Getenv("HOPPROBE_CONFIG"); env != "" {
		return env
	}
	return DefaultConfig
}

// version is the build's version and VCS revision, from the module's
// build information.
func version() string { return buildinfo.Get().String() }

func newRoot(code *int) *cobra.Command {
	g := &globals{}
	var path, output string
	var verbose, allowCatchAll bool
	var kube kubeSource
	root := &cobra.Command{
		Use:   "probe [--path HOST/PATH | COMMAND]",
		Short: "Walk the documented ALLINX paths hop by hop",
		Long: `probe walks every documented path (DNS, CloudFront, ALB, APISIX, Service,
data stores) with a protocol-specific probe per hop and says which hop broke.

  probe --path api.allinpro.com/futures/ws      walk one path once
  probe serve                                    walk every path, serve /metrics

--path exits 0 when the path is healthy, 1 when a hop failed (the first
failing hop is named), 3 when every hop answered but the answer skipped
a documented component (the gateway bypassed: its authentication and
rate limits did not run), 2 on bad configuration or an unknown path (the
nearest known paths are listed), or when the path reaches only a
catch-all route while another route of the host is a near miss
(api.allinpro.com/futurs/ws: did you mean …/futures/ws?; give
--allow-catch-all to walk the catch-all anyway).`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownCommand,
		Example: `  probe --path api.allinpro.com/futures/ws          walk one path, one line per hop
  probe --path api.allinpro.com/futures/ws -v -o json
  probe list --vantage external
  probe serve --config /etc/hopprobe/allinx.yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return cmd.Help()
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			cfg, v, ok := g.load(cmd, code)
			if !ok {
				return nil
			}
			*code = walkOnce(cmd.Context(), cfg, walkOpts{vantage: v, query: path, output: output, verbose: verbose,
				allowCatchAll: allowCatchAll, kube: kube}, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return nil
		},
	}
	root.SetVersionTemplate("probe {{.Version}}\n")
	root.SuggestionsMinimumDistance = 2
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", defaultConfig(), "topology `FILE`; $HOPPROBE_CONFIG when set, a relative path from the current directory")
	pf.StringVar(&g.vantage, "vantage", "", "vantage point: external, internal or cluster (default: the topology's vantage)")
	pf.StringVar(&g.source, "source-address", "", "every probe leaves from this local `IP` (connections of its address family): several vantages on one host, or a host with several addresses, each seen as its own")
	f := root.Flags()
	f.StringVar(&path, "path", "", "walk this path once: `HOST/PATH`, or a path ID that probe list prints")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.BoolVarP(&verbose, "verbose", "v", false, "print each hop's evidence under it: status and identifying headers, the address dialled, the certificate, DNS answers, store roles and leaders, the trace id")
	addKubeFlags(f, &kube, "with the cluster, also walk each pod behind the Service and each node of a NodePort: ")
	f.BoolVar(&allowCatchAll, "allow-catch-all", false, "walk a request path that only a host's catch-all route matches even when another route of the host is within two edits of it (without it, that is exit 2 with the near routes)")
	_ = root.RegisterFlagCompletionFunc("path", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		cfg, err := config.Load(g.config)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		v := g.vantage
		if v == "" {
			v = cfg.Vantage
		}
		paths, err := targets.Expand(cfg, v)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return targets.IDs(paths), cobra.ShellCompDirectiveNoFileComp
	})
	root.AddCommand(listCmd(g, code), validateCmd(g, code), driftCmd(g, code), importCmd(g, code), mapCmd(g, code), serveCmd(g, code), versionCmd())
	return root
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("--output must be table or json, got %q", o)
	}
	return nil
}

func addKubeFlags(f *pflag.FlagSet, k *kubeSource, why string) {
	f.StringVar(&k.file, "kube", "", why+"`FILE` holding the output of kubectl get svc,endpointslices,nodes -A -o json")
	f.BoolVar(&k.cluster, "cluster", false, why+"read the live cluster (in-cluster service account, else $KUBECONFIG or ~/.kube/config)")
}

func addAPISIXFlags(f *pflag.FlagSet, file, url *string) {
	f.StringVar(file, "apisix", "", "APISIX Admin API export `FILE` ({\"routes\": …, \"services\": …, \"upstreams\": …})")
	f.StringVar(url, "admin-url", "", "read the routes from the APISIX Admin API at `URL` (key from $APISIX_ADMIN_KEY)")
}

func listCmd(g *globals, code *int) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "Every path and its hops, with the reason a hop is skipped", Args: cobra.NoArgs,
		Example: `  probe list
  probe list --vantage external --config /etc/hopprobe/allinx.yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg, v, ok := g.load(cmd, code); ok {
				*code = list(cfg, v, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return nil
		},
	}
}

func validateCmd(g *globals, code *int) *cobra.Command {
	return &cobra.Command{
		Use: "validate", Short: "Load and check the topology: exit 0, or 2 with file:line and the reason for every problem", Args: cobra.NoArgs,
		Example: `  probe validate --config /etc/hopprobe/allinx.yaml`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, v, ok := g.load(cmd, code)
			if !ok {
				return nil
			}
			paths, err := targets.Expand(cfg, v)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				*code = ExitBadArgs
				return nil
			}
			if len(cfg.Problems) > 0 {
				// Printed by load; the topology would run, but not whole.
				*code = ExitBadArgs
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d routes, %d services, %d stores, %d paths)\n", cfg.File, len(cfg.Routes), len(cfg.Services), len(cfg.Stores), len(paths))
			return nil
		},
	}
}

func driftCmd(g *globals, code *int) *cobra.Command {
	var kube kubeSource
	var apisixFile, adminURL, output string
	cmd := &cobra.Command{
		Use: "drift",
		Example: `  probe drift --cluster
  probe drift --kube cluster.json --admin-url http://apisix-admin.apisix:9180 -o json`,
		Short: "Every difference between the topology and the cluster or APISIX: exit 0 none, 1 drift, 2 bad input",
		Long: `drift compares the documented topology with the cluster (a kubectl export or
the live API) and with APISIX (an Admin API export or the live Admin API):
a documented Service missing live, a live one not documented, a port or node
port that differs, a Service with no ready endpoint, an internal Service
exposed as NodePort or LoadBalancer; a documented route APISIX lacks, sends
elsewhere, or has undocumented.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if cfg, _, ok := g.load(cmd, code); ok {
				*code = drift(cmd.Context(), cfg, driftOpts{kube: kube, apisixFile: apisixFile, adminURL: adminURL, output: output},
					cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return nil
		},
	}
	addKubeFlags(cmd.Flags(), &kube, "")
	addAPISIXFlags(cmd.Flags(), &apisixFile, &adminURL)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func importCmd(g *globals, code *int) *cobra.Command {
	imp := &cobra.Command{Use: "import", Short: "The live Services and Nodes, or APISIX's routes, as topology YAML to merge by hand", Args: cobra.NoArgs,
		Example: `  probe import kube --cluster > live.yaml
  probe import apisix --admin-url http://apisix-admin.apisix:9180 > routes.yaml`}
	var kubeFrom kubeSource
	kube := &cobra.Command{
		Use: "kube", Short: "The Services of the documented namespaces and the Nodes, as topology YAML", Args: cobra.NoArgs,
		Example: `  kubectl get svc,endpointslices,nodes -A -o json > cluster.json
  probe import kube --from cluster.json
  probe import kube --cluster`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !kubeFrom.set() {
				return errors.New("give --from FILE (kubectl get svc,endpointslices,nodes -A -o json) or --cluster")
			}
			if cfg, _, ok := g.load(cmd, code); ok {
				*code = importKube(cmd.Context(), cfg, kubeFrom, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return nil
		},
	}
	kube.Flags().StringVar(&kubeFrom.file, "from", "", "`FILE` holding the output of kubectl get svc,endpointslices,nodes -A -o json")
	kube.Flags().BoolVar(&kubeFrom.cluster, "cluster", false, "read the live cluster instead")
	var from, adminURL string
	apisix := &cobra.Command{
		Use: "apisix", Short: "APISIX's routes (one per host and URI), as topology YAML", Args: cobra.NoArgs,
		Example: `  probe import apisix --admin-url http://apisix-admin.apisix:9180
  probe import apisix --from export.json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			*code = importAPISIX(cmd.Context(), from, adminURL, cmd.OutOrStdout(), cmd.ErrOrStderr())
			return nil
		},
	}
	apisix.Flags().StringVar(&from, "from", "", "Admin API export `FILE` ({\"routes\": …, \"services\": …, \"upstreams\": …})")
	apisix.Flags().StringVar(&adminURL, "admin-url", "", "read the routes from this APISIX Admin API (key from $APISIX_ADMIN_KEY)")
	imp.AddCommand(kube, apisix)
	return imp
}

func mapCmd(g *globals, code *int) *cobra.Command {
	var format string
	var walk bool
	cmd := &cobra.Command{
		Use: "map", Short: "The documented topology as a graph, each component coloured by one walk of every path", Args: cobra.NoArgs,
		Example: `  probe map > topology.mmd
  probe map --format json --walk=false`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg, v, ok := g.load(cmd, code); ok {
				*code = drawMap(cmd.Context(), cfg, v, format, walk, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid (to paste into a README) or json")
	cmd.Flags().BoolVar(&walk, "walk", true, "walk every path once to colour the graph (false: draw it uncoloured)")
	return cmd
}

func serveCmd(g *globals, code *int) *cobra.Command {
	var listen string
	var reloadEvery, driftEvery, settle time.Duration
	var stalls int
	var discover bool
	var otlp string
	var lo liveOpts
	var webConfig, probeListen string
	var replicasDNS, podIP, shard string
	logLevel, logFormat := promslog.NewLevel(), promslog.NewFormat()
	_ = logFormat.Set("logfmt")
	cmd := &cobra.Command{
		Use: "serve",
		Example: `  probe serve --config /etc/hopprobe/allinx.yaml
  probe serve --cluster --discover --log.format json
  probe serve --web.config.file /etc/hopprobe/web.yaml --web.probe-listen :9116`,
		Short: "Walk every path at its interval; serve /metrics, /healthz, /readyz, /api/v1/paths and the pages",
		Long: `serve walks every path at its interval and serves /metrics, /healthz, /readyz,
/api/v1/paths, the hop health page (/) and the topology map (/map). It reloads
the topology on SIGHUP or when the file's content changes; a file that does
not load is logged and the running topology stays.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if discover && !lo.kube.cluster {
				return errors.New("--discover follows the live cluster: give --cluster too (a kubectl export does not change)")
			}
			if settle <= 0 {
				return fmt.Errorf("--discover-settle must be positive, got %s", settle)
			}
			if stalls < 0 {
				return fmt.Errorf("--stall-intervals must be 0 or more, got %d", stalls)
			}
			// A web configuration that does not load would leave the port
			// open without the protection it asks for: refuse to start.
			if err := toolkitweb.Validate(webConfig); err != nil {
				return fmt.Errorf("--web.config.file %s: %w", webConfig, err)
			}
			var self netip.Addr
			if replicasDNS != "" {
				var err error
				if self, err = netip.ParseAddr(podIP); err != nil {
					return fmt.Errorf("--replicas-dns needs this pod's IP in --pod-ip (or $POD_IP, from the downward API's status.podIP): %q is not an IP address", podIP)
				}
			}
			host, _ := os.Hostname()
			shardIndex, shards, err := parseShard(shard, host)
			if err != nil {
				return err
			}
			cfg, _, ok := g.load(cmd, code)
			if !ok {
				return nil
			}
			lo.every, lo.discover, lo.settle = driftEvery, discover, settle
			*code = serve(cmd.Context(), cfg, serveOpts{vantage: g.vantage, listen: listen, reloadEvery: reloadEvery, stalls: stalls,
				live: lo, otlp: otlp, logLevel: logLevel, logFormat: logFormat, webConfig: webConfig, probeListen: probeListen,
				replicasDNS: replicasDNS, podIP: self, shardIndex: shardIndex, shards: shards}, cmd.ErrOrStderr())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":9115", "address for the metrics, status and pages")
	f.DurationVar(&reloadEvery, "reload-check", 10*time.Second, "how often to look for a changed topology file (0: only on SIGHUP)")
	f.IntVar(&stalls, "stall-intervals", status.DefaultStallIntervals, "/healthz fails once no walk finished for this many of the shortest path interval, so that a wedged prober is restarted (0: never)")
	addKubeFlags(f, &lo.kube, "compare with the cluster every --drift-every: ")
	addAPISIXFlags(f, &lo.apisixFile, &lo.adminURL)
	f.DurationVar(&driftEvery, "drift-every", 5*time.Minute, "how often to compare with --kube/--cluster and --apisix/--admin-url")
	f.BoolVar(&discover, "discover", false, "follow the live cluster (needs --cluster): NodePort hops on every Ready node, a hop per pod behind each Service")
	f.StringVar(&otlp, "otlp-endpoint", "", "export every walk as an OpenTelemetry trace to this OTLP/HTTP receiver, e.g. http://otel-collector:4318 (the walk a root span, each hop and phase a child span with its evidence)")
	f.DurationVar(&settle, "discover-settle", 10*time.Second, "gather cluster changes this long before the paths change (at most one change per period)")
	f.Var(flagValue{logLevel, "LEVEL"}, "log.level", "only log messages of this level or above: debug, info, warn or error")
	f.Var(flagValue{logFormat, "FORMAT"}, "log.format", "log as logfmt or json")
	f.StringVar(&webConfig, "web.config.file", "", "TLS and basic auth for every page of --listen, from `FILE` in the exporter-toolkit's web configuration format (see docs/web-config.md)")
	f.StringVar(&replicasDNS, "replicas-dns", "", "walk at this replica's phase among the ready replicas that the DNS `NAME` of their headless Service lists (sorted IPs, own index of n: phase index/n), so that n replicas walk n times an interval, evenly spaced; without it the phase comes from the host name")
	f.StringVar(&shard, "shard", "", "walk only shard `I/N` of the paths (0/2 and 1/2: two probers share a topology too large for one; every path walked by exactly one); ordinal/N takes I from the StatefulSet pod's ordinal modulo N")
	f.StringVar(&podIP, "pod-ip", os.Getenv("POD_IP"), "this replica's `IP` among --replicas-dns's answers (default $POD_IP)")
	f.StringVar(&probeListen, "web.probe-listen", "", "also serve /healthz and /readyz, and nothing else, without TLS or credentials on `ADDR`, for the kubelet's probes when --web.config.file asks for credentials")
	return cmd
}

// walkOpts is what the root command's flags ask of one walk.
type walkOpts struct {
	vantage, query, output string
	verbose, allowCatchAll bool
	kube                   kubeSource
}

func walkOnce(ctx context.Context, cfg *config.Config, o walkOpts, stdout, stderr io.Writer) int {
	// With the cluster at hand, each pod behind the Service and each node
	// of a NodePort is its own hop, as `probe serve --discover` walks them.
	var seen *targets.Live
	if o.kube.set() {
		inv, err := readKube(ctx, o.kube)
		if err != nil {
			fmt.Fprintf(stderr, "reading %s: %v\n", o.kube, err)
			return ExitBadArgs
		}
		seen = live.LiveFrom(inv).Documented(cfg)
	}
	paths, err := targets.ResolveLive(cfg, o.vantage, o.query, seen)
	if err == nil && !o.allowCatchAll && len(paths) > 0 && paths[0].ID != o.query {
		err = targets.CloserRoutes(cfg, o.query)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadArgs
	}
	w := scheduler.NewWalker(cfg.Defaults.Concurrency, probes.Run)
	var statuses []status.PathStatus
	code := ExitOK
	for _, p := range paths {
		r := w.Walk(ctx, p)
		st := status.StatusOf(r)
		statuses = append(statuses, st)
		switch {
		case !r.Success:
			code = ExitBroken
		case st.Verdict == status.VerdictBypassed && code == ExitOK:
			code = ExitBypassed
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"paths": statuses})
		return code
	}
	for i, st := range statuses {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		PrintTable(stdout, st, o.verbose)
	}
	return code
}

// newTable aligns tab-separated cells in columns, as kubectl does, with
// no spaces left at the end of a line (tabwriter pads a cell even when
// the cells after it are empty).
func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(&trimSpaces{w: out}, 0, 4, 2, ' ', 0)
}

// trimSpaces drops the spaces before each newline. tabwriter writes a
// line in several pieces (cell, padding, cell), so a run of spaces is
// held back until what follows it shows whether it ends a line.
type trimSpaces struct {
	w       io.Writer
	pending int // spaces held back
}

func (t *trimSpaces) Write(p []byte) (int, error) {
	var out []byte
	for _, c := range p {
		switch c {
		case ' ':
			t.pending++
			continue
		case '\n':
			t.pending = 0
		default:
			for ; t.pending > 0; t.pending-- {
				out = append(out, ' ')
			}
		}
		out = append(out, c)
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// PrintTable writes one path's walk as a table, the chain its answer
// showed and its verdict; verbose adds each hop's evidence under it.
func PrintTable(out io.Writer, st status.PathStatus, verbose bool) {
	fmt.Fprintf(out, "path %s (vantage %s, %s/%s)\n", st.ID, st.Vantage, st.Namespace, st.Service)
	// HOP, KIND, TARGET, LATENCY, VERDICT, ERROR.
	rows := [][6]string{{"HOP", "KIND", "TARGET", "LATENCY", "VERDICT", "ERROR"}}
	for _, h := range st.Hops {
		lat := "-"
		if h.Verdict == status.VerdictOK || h.Verdict == status.VerdictFailed {
			lat = fmt.Sprintf("%.1fms", h.LatencyMS)
		}
		verdict, msg := h.Verdict, h.Error
		if h.Recovered {
			verdict, msg = "recovered", "first: "+h.FirstError
		}
		if h.FirstFail {
			verdict += " (first)"
		}
		if h.Attempts > 1 {
			verdict += fmt.Sprintf(" ×%d", h.Attempts) // probes made to confirm it
		}
		// The row names the hop: an error that starts with its name (a
		// store's) does not say it twice.
		msg = strings.TrimPrefix(oneLine(msg), h.Name+": ")
		rows = append(rows, [6]string{h.Name, h.Kind, shortTarget(h.Target), lat, verdict, msg})
	}
	// One hop, one terminal line of 120 columns: the error is cut to what
	// the other columns leave (at least 30), -v prints it whole.
	width := 0
	for c := range 5 {
		w := 0
		for _, r := range rows {
			w = max(w, utf8.RuneCountInString(r[c]))
		}
		width += w + 2
	}
	room := max(30, tableWidth-width)
	cut := false
	tw := newTable(out)
	for _, r := range rows {
		if utf8.RuneCountInString(r[5]) > room {
			r[5], cut = shorten(r[5], room), true
		}
		fmt.Fprintln(tw, strings.Join(r[:], "\t"))
	}
	_ = tw.Flush()
	if verbose {
		fmt.Fprintln(out, "hops:")
		for _, h := range st.Hops {
			fmt.Fprintf(out, "  %s: %s\n", h.Name, h.Target)
			if h.Error != "" || h.FirstError != "" {
				fmt.Fprintf(out, "    error: %s\n", oneLine(cmp.Or(h.Error, "recovered; first: "+h.FirstError)))
			}
		}
		fmt.Fprintln(out, "evidence:")
		for _, h := range st.Hops {
			if len(h.Details) == 0 {
				continue
			}
			fmt.Fprintf(out, "  %s\n", h.Name)
			if len(h.Components) > 0 {
				fmt.Fprintf(out, "    components: %s\n", chain.String(h.Components))
			}
			for _, k := range slices.Sorted(maps.Keys(h.Details)) {
				fmt.Fprintf(out, "    %s: %s\n", k, oneLine(h.Details[k]))
			}
		}
	} else if cut {
		fmt.Fprintln(out, "(errors cut to fit; -v prints them whole)")
	}
	if c := st.Chain; c != nil {
		line := fmt.Sprintf("chain: %s (expected %s, observed %s", c.Verdict, chain.String(c.Expected), chain.String(c.Observed))
		if c.Hop != "" {
			line += ", read at " + c.Hop
		}
		line += ")"
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(out, line)
	}
	switch st.Verdict {
	case status.VerdictOK:
		fmt.Fprintf(out, "verdict: OK in %.1fms\n", st.DurationMS)
	case status.VerdictBypassed:
		fmt.Fprintf(out, "verdict: BYPASSED: every hop answered, but the answer skipped %s: requests reach the service past it (its authentication and rate limits did not run)\n",
			strings.Join(st.Bypassed, " and "))
	default:
		// The reason is on the hop's row; it is not said twice.
		fmt.Fprintf(out, "verdict: BROKEN, first failing hop: %s\n", st.FirstFailingHop)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// tableWidth is the terminal width the walk table keeps to.
const tableWidth = 120

// shorten fits an error into n runes: what failed is the hop's row
// already, so a "… failed: " lead is dropped; then the start (what the
// probe tried) and the end (the cause the kernel or the peer gave) are
// kept around an ellipsis.
func shorten(msg string, n int) string {
	if _, why, ok := strings.Cut(msg, " failed: "); ok {
		msg = why
	}
	r := []rune(msg)
	if len(r) <= n {
		return msg
	}
	head := n * 2 / 5
	return string(r[:head]) + "…" + string(r[len(r)-(n-head-1):])
}

// shortTarget is a hop's target as the table shows it: a request hop's
// URL is the path's (in the header line), so what is left is its scheme
// and the address it dials; a DNS or TLS hop its address and name. At
// most 32 characters, the end (the port) kept; -v prints it whole.
func shortTarget(t string) string {
	if url, addr, ok := strings.Cut(t, " via "); ok {
		scheme, _, _ := strings.Cut(url, "://")
		t = scheme + " via " + addr
	} else if name, ok := strings.CutPrefix(t, "resolve "); ok {
		// "resolve HOST (RESOLVER)": the resolver asked.
		if _, resolver, ok := strings.Cut(name, " ("); ok {
			t = strings.TrimSuffix(resolver, ")")
		}
	} else if rest, ok := strings.CutPrefix(t, "TLS "); ok {
		// "TLS ADDR (SNI NAME)": the address.
		t, _, _ = strings.Cut(rest, " (")
	}
	if r := []rune(t); len(r) > 32 {
		t = "…" + string(r[len(r)-31:])
	}
	return t
}

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
			fmt.Fprintf(stdout, "  %-22s %-10s %s\n", h.Name, h.Kind, strings.TrimRight(h.Describe()+note, " "))
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
	statuses := make([]status.PathStatus, len(paths))
	w := scheduler.NewWalker(cfg.Defaults.Concurrency, probes.Run)
	var wg sync.WaitGroup
	for i, p := range paths {
		if !walk {
			statuses[i] = status.Pending(p)
			continue
		}
		wg.Go(func() { statuses[i] = status.StatusOf(w.Walk(ctx, p)) })
	}
	wg.Wait()
	g := web.GraphOf(paths, statuses)
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
// driftOpts is what `probe drift`'s flags ask for: the live sides to
// compare with, and the output format.
type driftOpts struct {
	kube                         kubeSource
	apisixFile, adminURL, output string
}

func drift(ctx context.Context, cfg *config.Config, o driftOpts, stdout, stderr io.Writer) int {
	if !o.kube.set() && o.apisixFile == "" && o.adminURL == "" {
		fmt.Fprintln(stderr, "give the live side: --kube FILE (kubectl get svc,endpointslices,nodes -A -o json) and/or --apisix FILE or --admin-url URL")
		return ExitBadArgs
	}
	var items []targets.DriftItem
	var against []string
	if o.kube.set() {
		inv, err := readKube(ctx, o.kube)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitBadArgs
		}
		items = append(items, live.KubeDrift(cfg, inv)...)
		against = append(against, o.kube.String())
	}
	if o.apisixFile != "" || o.adminURL != "" {
		routes, src, err := readAPISIX(ctx, o.apisixFile, o.adminURL)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitBadArgs
		}
		items = append(items, live.RouteDrift(cfg, routes)...)
		against = append(against, src)
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"drift": append([]targets.DriftItem{}, items...)})
	} else {
		tw := newTable(stdout)
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

// flagValue gives a value with String and Set (promslog's level and
// format, as Prometheus' own components take them) the type name pflag
// shows in help.
type flagValue struct {
	v interface {
		String() string
		Set(string) error
	}
	typ string
}

func (f flagValue) String() string     { return f.v.String() }
func (f flagValue) Set(s string) error { return f.v.Set(s) }
func (f flagValue) Type() string       { return f.typ }

// versionCmd is `probe version`, as kubectl and helm have it beside --version.
func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "The build: module version, VCS revision, Go version and platform", Args: cobra.NoArgs,
		Example: "  probe version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "probe %s\n", version())
			return nil
		},
	}
}

// parseShard reads --shard "I/N"; "" is the whole topology. I may be
// "ordinal": the number at the end of hostname (a StatefulSet's pod
// hopprobe-4 is 4) modulo N, so that a StatefulSet of N×R pods runs R
// replicas of each of N shards.
func parseShard(s, hostname string) (index, n int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	n, err2 := strconv.Atoi(ns)
	if !ok || err2 != nil || n < 1 || n > 1000 {
		return 0, 0, fmt.Errorf("--shard %q: want I/N with 0 ≤ I < N ≤ 1000, e.g. 0/2, or ordinal/N in a StatefulSet", s)
	}
	if is == "ordinal" {
		_, digits, found := cutLast(hostname, "-")
		ord, err := strconv.Atoi(digits)
		if !found || err != nil || ord < 0 {
			return 0, 0, fmt.Errorf("--shard %q: the host name %q does not end in a StatefulSet ordinal (-0, -1, …)", s, hostname)
		}
		return ord % n, n, nil
	}
	index, err1 := strconv.Atoi(is)
	if err1 != nil || index < 0 || index >= n {
		return 0, 0, fmt.Errorf("--shard %q: want I/N with 0 ≤ I < N ≤ 1000, e.g. 0/2, or ordinal/N in a StatefulSet", s)
	}
	return index, n, nil
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
