// Package web serves what the prober knows to people and to the
// kubelet: the hop health page and the topology map, the JSON API
// behind them (/api/v1/paths, /api/v1/topology), liveness and readiness;
// and it lays the map out. It reads the status board; /metrics is the
// exporter's, mounted beside.
package web

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/allinx/hopprobe/status"
)

// indexHTML is the hop health page: every path a row, its hops left to
// right, coloured from /api/v1/paths.
//
//go:embed index.html
var indexHTML []byte

// mapHTML draws the topology graph from /api/v1/topology.
//
//go:embed map.html
var mapHTML []byte

// Handler serves the hop health page on /, the map on /map, /healthz,
// /readyz, the JSON API, and metrics (the exporter's handler) on
// /metrics.
func Handler(b *status.Board, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(indexHTML)
	})
	mux.HandleFunc("GET /map", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(mapHTML)
	})
	mux.HandleFunc("GET /api/v1/topology", func(w http.ResponseWriter, r *http.Request) {
		g := GraphOfBoard(b)
		// ?fit=WxH: laid out for a screen of that many pixels (the map
		// page asks for its window's).
		if fit := r.URL.Query().Get("fit"); fit != "" {
			sw, sh, ok := screenSize(fit)
			if !ok {
				http.Error(w, "fit must be WIDTHxHEIGHT in pixels, each between 100 and 10000", http.StatusBadRequest)
				return
			}
			g.Fit(sw, sh)
		}
		writeJSON(w, g)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := b.Live(time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.Ready() {
			http.Error(w, "not every path has been walked yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/v1/paths", func(w http.ResponseWriter, r *http.Request) {
		st := b.Statuses()
		if id := r.URL.Query().Get("path"); id != "" {
			filtered := st[:0:0]
			for _, s := range st {
				if s.ID == id {
					filtered = append(filtered, s)
				}
			}
			st = filtered
		}
		writeJSON(w, map[string]any{"paths": st})
	})
	// One path's last walks with each hop's evidence, and the evidence
	// changes between them. Path ids hold slashes (api.allinpro.com/ws*),
	// so the id is the rest of the URL path.
	mux.HandleFunc("GET /api/v1/paths/{id...}", func(w http.ResponseWriter, r *http.Request) {
		h, ok := b.History(r.PathValue("id"))
		if !ok {
			http.Error(w, fmt.Sprintf("no path %q; GET /api/v1/paths lists them", r.PathValue("id")), http.StatusNotFound)
			return
		}
		writeJSON(w, h)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// screenSize reads "1280x720".
func screenSize(s string) (w, h float64, ok bool) {
	ws, hs, found := strings.Cut(s, "x")
	wi, err1 := strconv.Atoi(ws)
	hi, err2 := strconv.Atoi(hs)
	if !found || err1 != nil || err2 != nil || wi < 100 || hi < 100 || wi > 10000 || hi > 10000 {
		return 0, 0, false
	}
	return float64(wi), float64(hi), true
}
