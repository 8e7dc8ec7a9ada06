package exporter_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/exporter"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// phasesOf are the phases each probe kind reports (probes/<kind>.go).
var phasesOf = map[hop.Kind][]string{
	hop.KindDNS: {"resolve"}, hop.KindTLS: {"connect", "tls"}, hop.KindHTTP: {"connect", "tls", "first_byte", "transfer"},
	hop.KindWebSocket: {"connect", "tls", "handshake", "reply"}, hop.KindTCP: {"connect"}, hop.KindNodePort: {"connect"},
	"redis": {"connect", "ping"}, "postgres": {"connect", "query"}, "kafka": {"connect", "metadata"}, "etcd": {"status", "read"},
}

// seriesPerHop walks every path of the shipped topology once, healthy,
// with the phases each kind reports, and counts the series of each hop
// and of each path in one text scrape.
func seriesPerHop(t *testing.T, m config.Metrics) (perHop map[[2]string]int, kindOf map[[2]string]string, roleOf map[[2]string]targets.Role, perPath int) {
	t.Helper()
	paths, err := targets.Expand(testkit.Allinx(t), config.VantageCluster)
	if err != nil {
		t.Fatal(err)
	}
	e := exporter.New(paths)
	e.SetMetrics(m)
	kindOf, roleOf = map[[2]string]string{}, map[[2]string]targets.Role{}
	for _, p := range paths {
		r := scheduler.PathResult{Path: p, Success: true, FirstFailing: -1, Hops: make([]scheduler.HopResult, len(p.Hops))}
		for i, h := range p.Hops {
			kindOf[[2]string{p.ID, h.Name}], roleOf[[2]string{p.ID, h.Name}] = string(h.Kind), h.Role
			hr := &r.Hops[i]
			if h.Skip != "" {
				hr.Skipped = true
				continue
			}
			hr.Success, hr.Duration = true, 20*time.Millisecond
			for _, ph := range phasesOf[h.Kind] {
				hr.Phases = append(hr.Phases, hop.Phase{Name: ph, Duration: 5 * time.Millisecond})
			}
			if h.Kind == hop.KindTLS {
				hr.CertExpiry = time.Now().Add(30 * 24 * time.Hour)
			}
		}
		observe(e, r)
	}
	mfs, err := e.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	perHop = map[[2]string]int{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "hopprobe_hop_") && !strings.HasPrefix(mf.GetName(), "hopprobe_tls_") &&
			!strings.HasPrefix(mf.GetName(), "hopprobe_path_") {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := labels(s)
			n := 1
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				n = len(s.GetHistogram().GetBucket()) + 2 // _sum, _count
				if b := s.GetHistogram().GetBucket(); !math.IsInf(b[len(b)-1].GetUpperBound(), 1) {
					n++ // the parser left +Inf implicit
				}
			}
			if _, ok := l["hop"]; ok {
				perHop[[2]string{l["path"], l["hop"]}] += n
			} else {
				perPath += n
			}
		}
	}
	return perHop, kindOf, roleOf, perPath
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// The default export of the shipped topology, once every hop is healthy:
// at most 8 series per probed hop on average, at most 7 on a hop that is
// not an entry hop (no phases there by default); with every option at
// its most, the full layout is still there.
func TestSeriesPerHopOnTheShippedTopology(t *testing.T) {
	perHop, kindOf, roleOf, perPath := seriesPerHop(t, config.Metrics{})
	byKind := map[string][]int{}
	total, probed := 0, 0
	for k, n := range perHop {
		key := fmt.Sprintf("%s %s", roleOf[k], kindOf[k])
		byKind[key] = append(byKind[key], n)
		if n > 3 { // a skipped hop has 3: skipped, probes_total{skipped}, node_info
			total += n
			probed++
			if roleOf[k] != targets.RoleEdge && n > 7 {
				t.Errorf("hop %v (%s): %d series, want at most 7", k, kindOf[k], n)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byKind)) {
		t.Logf("%-20s hops %3d  series per hop %v..%v", k, len(byKind[k]), slices.Min(byKind[k]), slices.Max(byKind[k]))
	}
	avg := float64(total) / float64(probed)
	t.Logf("%d probed hops, %.2f series per probed hop, %d path series", probed, avg, perPath)
	if avg > 8 {
		t.Errorf("%.2f series per probed hop by default; the budget is 8", avg)
	}
	full, _, _, _ := seriesPerHop(t, config.Metrics{Phases: config.PhasesAll,
		DurationBuckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	fullTotal := 0
	for k, n := range full {
		if perHop[k] > 3 {
			fullTotal += n
		}
	}
	if fullAvg := float64(fullTotal) / float64(probed); fullAvg < avg+12 {
		t.Errorf("with 13 buckets and every phase, %.2f series per hop; the full layout was not applied", fullAvg)
	}
}
