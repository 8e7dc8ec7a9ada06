// Package exporter publishes walk results: Prometheus metrics on
// /metrics, liveness on /healthz and /readyz, and every path's last walk
// as JSON on /api/v1/paths.
package exporter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Label sets. Every value comes from the topology file, so cardinality is
// bounded by it; no address, error text or per-request value is a label.
var (
	hopLabels  = []string{"path", "hop", "kind", "vantage", "namespace", "service"}
	pathLabels = []string{"path", "vantage", "namespace", "service"}
)

// Exporter holds the metrics and the last status of every path.
type Exporter struct {
	reg *prometheus.Registry

	hopSuccess   *prometheus.GaugeVec
	hopSkipped   *prometheus.GaugeVec
	hopFirstFail *prometheus.GaugeVec
	hopDuration  *prometheus.HistogramVec
	hopPhase     *prometheus.GaugeVec
	hopProbes    *prometheus.CounterVec
	certExpiry   *prometheus.GaugeVec
	pathSuccess  *prometheus.GaugeVec
	pathFirst    *prometheus.GaugeVec
	pathDuration *prometheus.GaugeVec
	walkLag      *prometheus.HistogramVec
	hopNode      *prometheus.GaugeVec
	edge         *prometheus.GaugeVec
	exposed      *prometheus.GaugeVec

	reloads    *prometheus.CounterVec
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge

	mu     sync.RWMutex
	order  []string
	status map[string]PathStatus
	walked map[string]bool
	// sig is each exported path's hop signature; a walk of a path whose
	// signature is not the current one (a reload changed or removed it)
	// is dropped instead of resurrecting stale series.
	sig   map[string]string
	edges map[[3]string]bool
}

// New registers the metrics for paths.
func New(paths []*targets.Path) *Exporter {
	e := &Exporter{
		reg: prometheus.NewRegistry(),
		hopSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_success",
			Help: "1 if the hop answered as expected in the last walk of its path, 0 if not."}, hopLabels),
		hopSkipped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_skipped",
			Help: "1 if the hop cannot be reached from this vantage and was not probed."}, hopLabels),
		hopFirstFail: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_first_failing",
			Help: "1 if this hop is the first failing hop of its path (the one to page about), else 0."}, hopLabels),
		hopDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hopprobe_hop_duration_seconds",
			Help:    "Duration of each hop probe.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, hopLabels),
		hopPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_phase_duration_seconds",
			Help: "Duration of each phase (dns, connect, tls, first_byte, transfer, …) of the last probe of a hop."},
			append(append([]string{}, hopLabels...), "phase")),
		hopProbes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hopprobe_hop_probes_total",
			Help: "Hop results by outcome: success, failure or skipped."},
			append(append([]string{}, hopLabels...), "result")),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_tls_cert_expiry_timestamp_seconds",
			Help: "Earliest NotAfter of the certificate chain the hop presented, as a Unix timestamp."}, hopLabels),
		pathSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_path_success",
			Help: "1 if no probed hop of the path failed in its last walk."}, pathLabels),
		pathFirst: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_path_first_failing_hop_position",
			Help: "Position (0-based) of the first failing hop of the path, -1 when healthy."}, pathLabels),
		pathDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_path_duration_seconds",
			Help: "Wall time of the last walk of the path."}, pathLabels),
		walkLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hopprobe_walk_lag_seconds",
			Help:    "How late a walk started against its schedule.",
			Buckets: []float64{.001, .005, .01, .02, .05, .1, .5, 1, 5}}, []string{"vantage"}),
		hopNode: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_node_info",
			Help: "Always 1: the component (entry hop, namespace/service or data store) a hop probes and the hop's position (00, 01, …) in its path, for joins."},
			[]string{"path", "hop", "vantage", "node", "position"}),
		edge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_topology_edge_info",
			Help: "Always 1: a documented link between two components that some path walks."},
			[]string{"source", "target", "vantage"}),
		exposed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hopprobe_hop_exposed",
			Help: "1 if a hop that must be unreachable from this vantage (a NodePort kept internal) answered: a security finding."},
			hopLabels),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hopprobe_config_reloads_total",
			Help: "Topology reloads (SIGHUP or file change) by result: success or failure."}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hopprobe_config_last_reload_successful",
			Help: "1 if the last reload attempt succeeded (or none was made), 0 if the running topology is older than the file."}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hopprobe_config_last_reload_success_timestamp_seconds",
			Help: "When the running topology was loaded, as a Unix timestamp."}),
		status: map[string]PathStatus{},
		walked: map[string]bool{},
		sig:    map[string]string{},
		edges:  map[[3]string]bool{},
	}
	e.reg.MustRegister(e.hopSuccess, e.hopSkipped, e.hopFirstFail, e.hopDuration, e.hopPhase, e.hopProbes,
		e.certExpiry, e.pathSuccess, e.pathFirst, e.pathDuration, e.walkLag, e.hopNode, e.edge, e.exposed,
		e.reloads, e.reloadOK, e.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e.reloadOK.Set(1)
	e.reloadTime.SetToCurrentTime()
	e.SetPaths(paths)
	return e
}

// signature is what identifies a path's exported series: its hops in order.
func signature(p *targets.Path) string {
	var b strings.Builder
	b.WriteString(p.Vantage + "|" + p.Namespace + "|" + p.Service)
	for _, h := range p.Hops {
		fmt.Fprintf(&b, "|%s:%s:%s:%t", h.Name, h.Kind, h.Node, h.Target.ExpectUnreachable)
	}
	return b.String()
}

// SetPaths makes paths the exported set. Paths that are new start as
// pending; paths that are gone, or whose hops changed, lose their series;
// unchanged paths keep their series and last status untouched.
func (e *Exporter) SetPaths(paths []*targets.Path) {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := map[string]string{}
	order := make([]string, 0, len(paths))
	for _, p := range paths {
		sig := signature(p)
		next[p.ID] = sig
		order = append(order, p.ID)
		if e.sig[p.ID] == sig {
			continue
		}
		if _, had := e.sig[p.ID]; had {
			e.deletePath(p.ID)
		}
		e.status[p.ID] = Pending(p)
		delete(e.walked, p.ID)
		for i, h := range p.Hops {
			e.hopNode.WithLabelValues(p.ID, h.Name, p.Vantage, h.Node, fmt.Sprintf("%02d", i)).Set(1)
		}
	}
	for id := range e.sig {
		if _, keep := next[id]; !keep {
			e.deletePath(id)
			delete(e.status, id)
			delete(e.walked, id)
		}
	}
	edges := map[[3]string]bool{}
	for _, p := range paths {
		for _, ed := range p.Edges() {
			k := [3]string{ed[0], ed[1], p.Vantage}
			edges[k] = true
			e.edge.WithLabelValues(k[:]...).Set(1)
		}
	}
	for k := range e.edges {
		if !edges[k] {
			e.edge.DeleteLabelValues(k[:]...)
		}
	}
	e.sig, e.order, e.edges = next, order, edges
}

// deletePath removes every series of one path.
func (e *Exporter) deletePath(id string) {
	l := prometheus.Labels{"path": id}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{e.hopSuccess, e.hopSkipped, e.hopFirstFail, e.hopDuration, e.hopPhase, e.hopProbes, e.certExpiry,
		e.pathSuccess, e.pathFirst, e.pathDuration, e.hopNode, e.exposed} {
		v.DeletePartialMatch(l)
	}
}

// Reloaded records a reload attempt; err is nil when the new topology
// was taken.
func (e *Exporter) Reloaded(err error) {
	if err != nil {
		e.reloads.WithLabelValues("failure").Inc()
		e.reloadOK.Set(0)
		return
	}
	e.reloads.WithLabelValues("success").Inc()
	e.reloadOK.Set(1)
	e.reloadTime.SetToCurrentTime()
}

// Registry exposes the registry (tests gather from it).
func (e *Exporter) Registry() *prometheus.Registry { return e.reg }

// Observe records one walk.
func (e *Exporter) Observe(r scheduler.PathResult) {
	p := r.Path
	// Held for writing so that a walk and a reload never interleave.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sig[p.ID] != signature(p) {
		return // a walk of a path the last reload removed or changed
	}
	for i, hr := range r.Hops {
		h := &p.Hops[i]
		lv := prometheus.Labels{"path": p.ID, "hop": h.Name, "kind": string(h.Kind), "vantage": p.Vantage,
			"namespace": p.Namespace, "service": p.Service}
		first := 0.0
		if i == r.FirstFailing {
			first = 1
		}
		e.hopFirstFail.With(lv).Set(first)
		if hr.Skipped {
			e.hopSkipped.With(lv).Set(1)
			e.hopProbes.With(with(lv, "result", "skipped")).Inc()
			continue
		}
		e.hopSkipped.With(lv).Set(0)
		ok, result := 0.0, "failure"
		if hr.Success {
			ok, result = 1, "success"
		}
		e.hopSuccess.With(lv).Set(ok)
		if h.Target.ExpectUnreachable {
			e.exposed.With(lv).Set(1 - ok)
		}
		e.hopProbes.With(with(lv, "result", result)).Inc()
		e.hopDuration.With(lv).Observe(hr.Duration.Seconds())
		for _, ph := range hr.Phases {
			e.hopPhase.With(with(lv, "phase", ph.Name)).Set(ph.Duration.Seconds())
		}
		if !hr.CertExpiry.IsZero() {
			e.certExpiry.With(lv).Set(float64(hr.CertExpiry.Unix()))
		}
	}
	pl := prometheus.Labels{"path": p.ID, "vantage": p.Vantage, "namespace": p.Namespace, "service": p.Service}
	ok := 0.0
	if r.Success {
		ok = 1
	}
	e.pathSuccess.With(pl).Set(ok)
	e.pathFirst.With(pl).Set(float64(r.FirstFailing))
	e.pathDuration.With(pl).Set(r.Duration.Seconds())
	e.walkLag.WithLabelValues(p.Vantage).Observe(max(r.Lag.Seconds(), 0))

	e.status[p.ID] = StatusOf(r)
	e.walked[p.ID] = true
}

func with(l prometheus.Labels, k, v string) prometheus.Labels {
	out := make(prometheus.Labels, len(l)+1)
	for a, b := range l {
		out[a] = b
	}
	out[k] = v
	return out
}

// Statuses returns every path's last status in topology order.
func (e *Exporter) Statuses() []PathStatus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]PathStatus, 0, len(e.order))
	for _, id := range e.order {
		out = append(out, e.status[id])
	}
	return out
}

// Ready reports whether every path has been walked at least once.
func (e *Exporter) Ready() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.walked) >= len(e.order)
}

// Handler serves /metrics, /healthz, /readyz and /api/v1/paths.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{Registry: e.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !e.Ready() {
			http.Error(w, "not every path has been walked yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/v1/paths", func(w http.ResponseWriter, r *http.Request) {
		st := e.Statuses()
		if id := r.URL.Query().Get("path"); id != "" {
			filtered := st[:0:0]
			for _, s := range st {
				if s.ID == id {
					filtered = append(filtered, s)
				}
			}
			st = filtered
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"paths": st})
	})
	return mux
}
