// Package tracing exports each walk as an OpenTelemetry trace over OTLP
// (HTTP/protobuf): the walk a root span, each hop a child span carrying
// its evidence, each phase of a hop a span under it. The hop's span is
// the parent that its probe request names in its traceparent, so that in
// Tempo or Jaeger the probe sits above APISIX's and the service's own
// spans.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Provider exports the walks' spans until Shutdown.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Start builds a provider that sends spans to endpoint, an OTLP/HTTP
// base URL such as http://otel-collector:4318 (/v1/traces is added), or
// a full traces URL. Spans are batched in a bounded queue: a receiver
// that is down or slow drops spans, never holds a probe.
func Start(endpoint, version, vantage string) (*Provider, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--otlp-endpoint %q: want an OTLP/HTTP base URL such as http://otel-collector:4318", endpoint)
	}
	if u.User != nil {
		return nil, errors.New("--otlp-endpoint must not carry credentials in the URL (they would be logged); use a collector on the pod's network instead")
	}
	// A base URL gets the traces path, as OTEL_EXPORTER_OTLP_ENDPOINT
	// does; a URL with a path is taken as the traces URL itself.
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String()), otlptracehttp.WithTimeout(5 * time.Second)}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter for %s: %w", u.Redacted(), err)
	}
	res := resource.NewSchemaless(
		semconv.ServiceName("hopprobe"),
		semconv.ServiceVersion(version),
		attribute.String("hopprobe.vantage", vantage),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithMaxQueueSize(4096), sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	return &Provider{tp: tp}, nil
}

// Tracer is the tracer the walker starts its spans with.
func (p *Provider) Tracer() trace.Tracer { return p.tp.Tracer("github.com/allinx/hopprobe") }

// Shutdown sends what is queued, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }
