# hopprobe: `make demo` runs the prober on the embedded demo topology,
# `make test` runs every check CI runs.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOTESTSUM   ?= gotest.tools/gotestsum@v1.13.0
DEMO_LISTEN ?= 127.0.0.1:9115
# DEMO_EDGE: how the demo's CloudFront sends requests on: documented, bypass or nlb.
DEMO_EDGE   ?= documented
# DEMO_BREAK: an HTTP version the demo's CloudFront stops speaking: none, h2 or h3.
DEMO_BREAK  ?= none

.PHONY: all build test unit lint fmt-check tidy-check vet demo bench bench-steady bench-detect bench-sites clean image deploy-sync fuzz dashboards e2e kube-apiserver helm prometheus e2e-tools

all: build

# BUILDVCS stamps the VCS revision into the binaries (probe --version,
# hopprobe_build_info) even where GOFLAGS says -buildvcs=false; outside a
# git work tree there is none to stamp.
BUILDVCS := $(shell git rev-parse --is-inside-work-tree >/dev/null 2>&1 && echo -buildvcs=true)

build:
	$(GO) build $(BUILDVCS) -o bin/probe ./cmd/probe
	$(GO) build $(BUILDVCS) -o bin/demo ./cmd/demo

## test: formatting, go.mod tidiness, vet, staticcheck, then every test with
## the race detector, one package at a time (-p 1) so that the fault tests'
## millisecond checks are not measured against another package's load.
## gotestsum ends with a summary that names every skipped test and its
## reason, so that a missing server is never a silent "ok".
test: fmt-check tidy-check vet lint unit

unit:
	@echo "make test: every test with -race, one package at a time (about 6 minutes warm; the first run also builds the race-enabled test binaries)"
	$(GO) run $(GOTESTSUM) --format pkgname --format-hide-empty-pkg -- -race -count=1 -p 1 -timeout 8m ./...

tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	@echo "make test: go vet ./... (with a cold build cache it type-checks about 900 packages: roughly 10 minutes on 2 cores, seconds once warm)"
	$(GO) vet ./...

lint:
	@echo "make test: staticcheck (downloaded and built once: a few minutes cold)"
	$(GO) run $(STATICCHECK) ./...

## image: the container image (needs a Docker engine; CI has none and lints the Dockerfile instead)
IMAGE ?= ghcr.io/allinx/hopprobe:latest
image:
	docker build -t $(IMAGE) .

## deploy-sync: copy config/allinx.yaml into the kustomize base and the Helm chart, the rules and
## dashboards into the chart, and regenerate the PrometheusRule
deploy-sync:
	$(GO) test -count=1 -run 'TestTopologyCopyMatchesConfig|TestPrometheusRuleMatchesRulesFile|TestChartCopiesMatch' ./deploy -update

## dashboards: write deploy/grafana/dashboards/*.json from the Go that builds them (deploy/grafana)
dashboards:
	$(GO) run ./cmd/dashboards

## demo: loopback stand-ins for DNS, CloudFront, ALBs, APISIX and services + probe serve
demo:
	@echo "make demo: building bin/demo (a first build with a cold cache compiles about 900 packages and takes several minutes on 2 cores; later builds take seconds)"
	@$(GO) build $(BUILDVCS) -o bin/demo ./cmd/demo
	@$(GO) build $(BUILDVCS) -o bin/probe ./cmd/probe
	bin/demo --config config/demo.yaml --listen $(DEMO_LISTEN) --edge $(DEMO_EDGE) --break-protocol $(DEMO_BREAK)

## fuzz: run each fuzz target for FUZZTIME (seeds in */testdata/fuzz run in every `make test`)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz FuzzMatchRoute -fuzztime $(FUZZTIME) ./targets
	$(GO) test -run '^$$' -fuzz FuzzReadKubeList -fuzztime $(FUZZTIME) ./live
	$(GO) test -run '^$$' -fuzz FuzzReadAPISIXExport -fuzztime $(FUZZTIME) ./live
	for f in FuzzCheckJSON FuzzRedisInfo FuzzRESPFrames FuzzDNSAnswer FuzzRedact FuzzGoRedisBehindTheGuard FuzzKmsgMetadataBehindTheGuard FuzzEtcdReplyBehindTheCount FuzzPgxBehindTheGuard; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./probes || exit 1; done
	$(GO) test -run '^$$' -fuzz FuzzTextWriter -fuzztime $(FUZZTIME) ./exporter

## bench: probe cost per protocol (Go benchmarks), then the scale harness (100, 1,000 and 10,000 hops)
SCALE_HOPS     ?= 100,1000,10000
SCALE_DURATION ?= 45s
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./probes/ ./scheduler/
	$(GO) run ./cmd/scalebench -hops $(SCALE_HOPS) -interval 15s -duration $(SCALE_DURATION)

## bench-steady: probe serve (the binary) on 1,000 and 10,000 HTTP targets every 15 s with
## Prometheus-like scrapes, beside the paced and back-to-back bare-GET floors on the same
## counting peer; CLOUDPROBER=/path/to/cloudprober adds cloudprober on the same targets.
## About 4 minutes per size (9 with cloudprober).
STEADY_HOPS     ?= 1000,10000
STEADY_DURATION ?= 60s
bench-steady:
	$(GO) run ./cmd/scalebench -steady -hops $(STEADY_HOPS) -interval 15s -duration $(STEADY_DURATION)

## bench-detect: time from an outage to the page, end to end at the shipped settings: two
## replicas of probe serve on the demo's stand-ins, Debian's Prometheus (shipped rules, scrape at
## the ServiceMonitor's interval, evaluation every 30 s) and Alertmanager (shipped route and
## inhibition); DETECT_OUTAGES outages of a Redis, then DETECT_LOSS of 3 % packet loss (nftables
## in a network namespace of its own; needs root). About 40 minutes; docs/performance.md.
DETECT_OUTAGES ?= 5
DETECT_LOSS    ?= 15m
bench-detect: build
	$(GO) run ./cmd/detectbench -outages $(DETECT_OUTAGES) -loss $(DETECT_LOSS)

## bench-sites: probe sites end to end: three probers, each leaving from its own loopback
## address beside a Prometheus agent (deploy/external/agent.yml) with its own site label, and a
## fourth on 1,000 hops, pushing to a receiving Prometheus with the shipped rules and Alertmanager
## route: one site cut from the edge (a ticket, no page), a store every site sees stopped (one
## page), the receiver away for SITES_OUTAGE (no gap; memory), a receiver that answers 500, 429,
## then hangs. In network namespaces of its own; needs root. About 35 minutes; docs/performance.md.
SITES_OUTAGE ?= 10m
bench-sites: build
	$(GO) run ./cmd/sitebench -outage $(SITES_OUTAGE)

clean:
	rm -rf bin config/.demo

## e2e: the end-to-end suite against a real kube-apiserver and etcd, in a
## network namespace of its own (it needs root to make one).
## kube-apiserver is built from the Go module proxy once
## (e2e/kube-apiserver) and cached under E2E_CACHE, keyed by its module.
E2E_CACHE      ?= $(HOME)/.cache/hopprobe
KUBE_APISERVER ?= $(E2E_CACHE)/kube-apiserver-$(shell cat e2e/kube-apiserver/go.mod e2e/kube-apiserver/go.sum e2e/kube-apiserver/main.go | sha256sum | cut -c1-16)
kube-apiserver: $(KUBE_APISERVER)
## helm: the real helm, built once from its Go module (go install; its
## Kubernetes modules are the API server's v0.37.2) and cached beside it.
HELM_VERSION ?= v4.3.2
HELM         ?= $(E2E_CACHE)/helm-$(HELM_VERSION)/helm
helm: $(HELM)
## prometheus: Debian's Prometheus is built without Kubernetes service
## discovery, so the suite's ServiceMonitor check builds Prometheus from
## its Go module with only that discovery (its remove_all_sd and
## enable_kubernetes_sd build tags), once, cached beside the others.
PROMETHEUS_VERSION ?= v0.316.0
PROMETHEUS         ?= $(E2E_CACHE)/prometheus-$(PROMETHEUS_VERSION)/prometheus
prometheus: $(PROMETHEUS)
## e2e-tools: what make e2e builds once (.ci/run builds them beside make test)
e2e-tools: $(KUBE_APISERVER) $(HELM) $(PROMETHEUS)

e2e: e2e-tools
	$(GO) build $(BUILDVCS) -o bin/probe ./cmd/probe
	$(GO) vet -tags e2e ./e2e/
	$(GO) run $(STATICCHECK) -tags e2e ./e2e/
	HOPPROBE_KUBE_APISERVER=$(KUBE_APISERVER) HOPPROBE_PROBE=$(CURDIR)/bin/probe HOPPROBE_HELM=$(HELM) HOPPROBE_PROMETHEUS=$(PROMETHEUS) \
		$(GO) run $(GOTESTSUM) --format testname -- -tags e2e -count=1 -timeout 15m ./e2e/

$(HELM):
	@echo "make e2e: building helm $(HELM_VERSION) from the Go module proxy (once; a few minutes on 2 cores with a cold cache)"
	@mkdir -p $(dir $(HELM))
	GOBIN=$(dir $(HELM)) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

$(PROMETHEUS):
	@echo "make e2e: building prometheus $(PROMETHEUS_VERSION) with Kubernetes discovery from the Go module proxy (once; a few minutes on 2 cores with a cold cache)"
	@mkdir -p $(dir $(PROMETHEUS))
	GOBIN=$(dir $(PROMETHEUS)) $(GO) install -tags remove_all_sd,enable_kubernetes_sd github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)

$(KUBE_APISERVER):
	@echo "make e2e: building kube-apiserver from the Go module proxy (once; about 8-15 minutes on 2 cores with a cold cache)"
	@mkdir -p $(E2E_CACHE)
	cd e2e/kube-apiserver && $(GO) build -trimpath -ldflags=-s -o $@.tmp . && mv $@.tmp $@
