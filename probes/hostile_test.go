package probes_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/hostile"
	"github.com/allinx/hopprobe/probes"
)

const hostilePW = "Hostile-Peer-Secret"

// hostileTarget is how a probe of the right kind reaches a peer at addr.
func hostileTarget(name, addr string) (hop.Kind, hop.Target) {
	store := func(kind string) *config.Store {
		return &config.Store{Name: name, Kind: kind, Address: addr, Username: "hopprobe",
			Password: &config.SecretRef{Env: "HOPPROBE_TEST_HOSTILE_PW"}, Postgres: &config.PostgresOpts{SSLMode: "prefer"}}
	}
	switch kind, _, _ := strings.Cut(name, "-"); kind {
	case "redis", "postgres", "kafka", "etcd":
		st := store(kind)
		if kind != "postgres" {
			st.Postgres = nil
			st.Password = nil
		}
		if strings.HasPrefix(name, "redis-sentinel") {
			st.Redis = &config.RedisOpts{Mode: "sentinel", MasterName: "futures"}
			st.Password = &config.SecretRef{Env: "HOPPROBE_TEST_HOSTILE_PW"}
		}
		if kind == "kafka" {
			st.Kafka = &config.KafkaOpts{Topics: []string{"orders"}}
			if strings.Contains(name, "scram") || strings.Contains(name, "sasl") {
				st.Kafka.SASL = &config.SASL{Mechanism: "scram-sha-256", Username: "hopprobe", Password: &config.SecretRef{Env: "HOPPROBE_TEST_HOSTILE_PW"}}
			}
			if strings.HasSuffix(name, "-elsewhere") {
				st.Kafka.SASL = &config.SASL{Mechanism: "plain", Username: "hopprobe", Password: &config.SecretRef{Env: "HOPPROBE_TEST_HOSTILE_PW"}}
				st.Kafka.CanaryTopic = "hopprobe-canary"
			}
		}
		return hop.Kind(kind), hop.Target{Address: addr, Host: "127.0.0.1", Store: st}
	case "websocket":
		return hop.KindWebSocket, hop.Target{Address: addr, Host: "ws.example.test", Scheme: "http", Path: "/ws",
			Expect: config.Expect{Send: "ping", Reply: "pong"}, MaxBodyBytes: 1 << 20}
	case "http":
		tg := hop.Target{Address: addr, Host: "api.example.test", Scheme: "http", Path: "/health", MaxBodyBytes: 1 << 20}
		if strings.Contains(name, "gzip") || strings.Contains(name, "json") {
			tg.Expect.JSON = map[string]string{"status": "ok"}
		}
		return hop.KindHTTP, tg
	case "dns":
		return hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: addr}
	case "tls":
		return hop.KindTLS, hop.Target{Address: addr, Host: "example.test"}
	case "http2":
		return hop.KindHTTP, hop.Target{Address: addr, Host: "hostile.example.test", Scheme: "https", Path: "/health",
			TLS: &config.TLS{InsecureSkipVerify: true}, Protocols: []string{"h2"}, MaxBodyBytes: 1 << 20}
	}
	panic("no target for hostile peer " + name)
}

// connectOnly are the kinds whose probe reads nothing from its peer: it
// connects (tcp), or must fail to (nodeport from a vantage that must not
// reach it). No byte of a peer's reaches them, so they have no hostile
// peers and nothing to wait for once connected. Every other kind must
// have both; a kind added to the registry without them fails
// TestEveryKindMeetsHostilePeers.
var connectOnly = map[hop.Kind]string{
	hop.KindTCP:      "a bare connect",
	hop.KindNodePort: "a bare connect, or its refusal",
}

// The hostile and cancellation suites cover every kind the registry
// has, not a list kept by hand.
func TestEveryKindMeetsHostilePeers(t *testing.T) {
	for _, k := range probes.Kinds() {
		if _, ok := connectOnly[k]; ok {
			continue
		}
		n := 0
		for _, name := range hostile.Names() {
			if kind, _, _ := strings.Cut(name, "-"); kind == string(k) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("kind %s has no hostile peer in internal/hostile (name it %s-<behaviour>), and is not a connect-only kind", k, k)
		}
	}
}

func startHostile(t *testing.T, name string) *hostile.Peer {
	t.Helper()
	p, err := hostile.Start(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// printable reports the first byte or rune of s a terminal would act on.
func printable(s string) (rune, bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return r, false
		}
	}
	return 0, true
}

// hostileReasons holds, for every hostile peer, what its hop's reason
// must say: the limit it ran into, by its setting's name where it has
// one, or else what the peer did wrong ("a|b": either will do). A peer
// added without its line fails TestHostilePeersFailHopsWithShortCleanReasons.
var hostileReasons = map[string]string{
	"dns-cname-chain":              "longer than 8 aliases",
	"dns-escapes":                  `CNAME loop for api.example.test: x\027[31m`,
	"dns-garbage":                  "did not answer",
	"dns-record-flood":             "no A or AAAA record for api.example.test",
	"etcd-garbage-frames":          "broke 3 connections",
	"etcd-gzip-unoffered":          `Decompressor is not installed for grpc-encoding "gzip"`,
	"etcd-kv-flood":                "more than 1024 fields",
	"etcd-nested-groups":           "protobuf group",
	"http-endless-body":            "(max_body_bytes)",
	"http-escapes":                 `\x1b[31mRED`,
	"http-giant-header":            "malformed MIME header line",
	"http-gzip-unoffered":          `Content-Encoding "gzip", which the probe did not ask for`,
	"http-header-confetti":         "HTTP 503",
	"http-informational-flood":     "more than 5 informational",
	"http-json-nesting":            "exceeded max depth",
	"http2-continuation-flood":     "over 64 KiB",
	"http2-endless-stream":         "(max_body_bytes)|(max_response_bytes)", // whichever the transport's read-ahead meets first
	"http2-hpack-bomb":             "over 64 KiB",
	"http2-ping-flood":             "(max_response_bytes)",
	"http2-settings-flood":         "(max_response_bytes)",
	"kafka-brokers-elsewhere":      "credentials withheld",
	"kafka-huge-response":          "(max_response_bytes)",
	"kafka-metadata-confetti":      "more than the 384 KiB a probe reads",
	"kafka-sasl-stall":             "no answer within 5s",
	"kafka-scram-work-bomb":        "more than the 16384 a probe computes",
	"postgres-cleartext":           "server requested password authentication",
	"postgres-huge-message":        "(max_response_bytes)",
	"postgres-option-confetti":     "before the session was ready (at most 65536)",
	"postgres-sasl-stall":          "no answer within 5s",
	"postgres-scram-work-bomb":     "more than the 16384 a probe computes",
	"redis-array-bomb":             "(max_response_bytes)",
	"redis-deep-nesting":           "nested more than 16 levels",
	"redis-element-flood":          "more than the 4096 a probe reads",
	"redis-escapes":                `\x1b[31mRED`,
	"redis-huge-bulk":              "(max_response_bytes)",
	"redis-length-bomb":            "(max_response_bytes)",
	"redis-sentinel-elsewhere":     "credentials withheld",
	"redis-sentinel-nested-master": "nested more than 16 levels",
	"tls-escapes":                  "does not look like a TLS handshake",
	"tls-giant-handshake-message":  "exceeds maximum of 65536 bytes",
	"tls-many-certificates":        "certificate is valid for hostile.example.test",
	"websocket-deflate-unoffered":  "which the probe did not offer",
	"websocket-garbage-frames":     "(max_body_bytes)",
	"websocket-header-flood":       "larger than 64 KiB",
}

// Every hostile peer makes its hop fail, promptly, with a short reason a
// terminal can print that says what went wrong, and without a panic
// escaping.
func TestHostilePeersFailHopsWithShortCleanReasons(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	names := hostile.Names()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := hostileReasons[name]
			if !ok {
				t.Fatalf("hostileReasons has no line for %s: add what its hop's reason must say", name)
			}
			p := startHostile(t, name)
			kind, tg := hostileTarget(name, p.Addr)
			const timeout = 5 * time.Second
			start := time.Now()
			r := probes.Run(context.Background(), kind, &tg, timeout)
			took := time.Since(start)
			if r.Success {
				t.Fatalf("a hostile %s peer passed the probe", name)
			}
			if !slices.ContainsFunc(strings.Split(want, "|"), func(w string) bool { return strings.Contains(r.Error, w) }) {
				t.Errorf("reason does not say %q: %s", want, r.Error)
			}
			if len(r.Error) > hop.MaxReasonBytes {
				t.Errorf("reason is %d bytes, over %d", len(r.Error), hop.MaxReasonBytes)
			}
			if c, ok := printable(r.Error); !ok {
				t.Errorf("reason carries %q: %q", c, r.Error)
			}
			for k, v := range r.Details {
				if c, ok := printable(v); !ok || len(v) > hop.MaxDetailBytes {
					t.Errorf("detail %s (%d bytes) carries %q", k, len(v), c)
				}
			}
			if strings.Contains(r.Error, hostilePW) {
				t.Errorf("reason leaks the password: %s", r.Error)
			}
			if took > timeout+time.Second {
				t.Errorf("the probe took %s, past its %s timeout", took, timeout)
			}
			if p.Passwords.Load() != 0 {
				t.Errorf("the peer received the password %d times", p.Passwords.Load())
			}
			if p.Redirected.Load() != 0 {
				t.Errorf("the probe followed the peer to %s, which the topology does not name, %d times", p.Elsewhere, p.Redirected.Load())
			}
			t.Logf("%s after %s: %s", name, took.Round(time.Millisecond), r.Error)
		})
	}
	for name := range hostileReasons {
		if !slices.Contains(names, name) {
			t.Errorf("hostileReasons names %s, which is no hostile peer", name)
		}
	}
}

// A byte budget smaller than the flood ends the probe at the budget.
func TestByteBudgetCutsAFloodAtTheLimit(t *testing.T) {
	p := startHostile(t, "http-endless-body")
	_, tg := hostileTarget("http-endless-body", p.Addr)
	tg.MaxBodyBytes = 64 << 20
	tg.MaxResponseBytes = 256 << 10
	wantFail(t, probes.Run(context.Background(), hop.KindHTTP, &tg, 5*time.Second), "more than 256 KiB (max_response_bytes)")
}

// silentPeer accepts connections (or datagrams) and never answers.
func silentPeer(t *testing.T, udp bool) string {
	t.Helper()
	if udp {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc.LocalAddr().String()
	}
	var mu sync.Mutex
	var held []net.Conn
	closed := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for _, c := range held {
			c.Close()
		}
	})
	ln := serveLoopback(t, func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return
		}
		held = append(held, c)
	})
	return ln.Addr().String()
}

// Every probe returns within 100 ms of its context being cancelled
// (reload, shutdown), against a peer that never answers. The bound is
// on top of what one probe against a refusing port costs on this
// machine right now, measured in the same run.
func TestEveryProbeReturnsPromptlyOnCancel(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	closed := acceptAndClose(t).Addr().String()
	for _, k := range probes.Kinds() {
		name := string(k)
		if _, ok := connectOnly[k]; ok {
			continue // nothing to wait for after the connect, which the dialer bounds
		}
		t.Run(name, func(t *testing.T) {
			addr := silentPeer(t, name == "dns")
			var kind hop.Kind
			var tg, base hop.Target
			kind, tg = hostileTarget(name+"-silent", addr)
			_, base = hostileTarget(name+"-silent", closed)
			if name == "dns" {
				base.Resolver = silentPeer(t, true)
			}
			// Baseline: the cost of one probe's set-up and tear-down here.
			b0 := time.Now()
			bctx, bcancel := context.WithCancel(context.Background())
			bcancel()
			probes.Run(bctx, kind, &base, 10*time.Second)
			baseline := time.Since(b0)

			cancelWithin(t, kind, &tg, baseline, nil, "")
		})
	}
}

// A server that turns on permessage-deflate although the probe never
// offered it is refused at the handshake (RFC 6455 forbids it), before
// its one compressed frame can inflate 64 KiB into 64 MiB: the probe
// allocates a small fraction of that.
func TestAnUnofferedWebSocketExtensionIsRefused(t *testing.T) {
	p := startHostile(t, "websocket-deflate-unoffered")
	kind, tg := hostileTarget("websocket-deflate-unoffered", p.Addr)
	var r hop.Result
	grew := probes.AllocatedBy(func() { r = probes.Run(context.Background(), kind, &tg, 5*time.Second) })
	wantFail(t, r, "did not offer")
	if grew > 16<<20 {
		t.Errorf("the probe allocated %d MiB for a frame of about 64 KiB", grew>>20)
	}
}

// A peer that asks for a billion SCRAM iterations (a Kafka broker, a
// PostgreSQL server) gets a refusal that names the count, at once, not
// minutes of hashing past the hop's timeout.
func TestAPeerChosenSCRAMWorkFactorIsCapped(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	for _, name := range []string{"kafka-scram-work-bomb", "postgres-scram-work-bomb"} {
		t.Run(name, func(t *testing.T) {
			p := startHostile(t, name)
			kind, tg := hostileTarget(name, p.Addr)
			start := time.Now()
			r := probes.Run(context.Background(), kind, &tg, 5*time.Second)
			wantFail(t, r, "1000000000 SCRAM iterations")
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("the refusal took %s", el)
			}
		})
	}
}

// Cancellation ends a probe inside authentication as promptly as
// anywhere else: a peer that starts SCRAM and then says nothing, the
// probe cancelled while it waits, returns within 100 ms over the cost
// of a probe against a refusing port, measured in the same run.
func TestAProbeCancelledInsideAuthenticationReturnsPromptly(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	closed := acceptAndClose(t).Addr().String()
	for _, name := range []string{"postgres-sasl-stall", "kafka-sasl-stall"} {
		t.Run(name, func(t *testing.T) {
			p := startHostile(t, name)
			kind, tg := hostileTarget(name, p.Addr)
			_, base := hostileTarget(name, closed)
			b0 := time.Now()
			probes.Run(context.Background(), kind, &base, 10*time.Second)
			baseline := time.Since(b0)

			cancelWithin(t, kind, &tg, baseline, func() bool { return p.Stalled.Load() > 0 }, " inside authentication")
		})
	}
}

// cancelWithin runs a probe of kind on tg, cancels it once reached says
// it waits where the test wants it (nil: after 300 ms), and wants it
// back, failed, within 100 ms over baseline.
func cancelWithin(t *testing.T, kind hop.Kind, tg *hop.Target, baseline time.Duration, reached func() bool, where string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan hop.Result)
	go func() { done <- probes.Run(ctx, kind, tg, 30*time.Second) }()
	if reached == nil {
		time.Sleep(300 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); reached != nil && !reached(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the probe never got%s: %s", where, (<-done).Error)
		}
	}
	cancelled := time.Now()
	cancel()
	select {
	case r := <-done:
		late := time.Since(cancelled)
		if r.Success {
			t.Fatal("a cancelled probe succeeded")
		}
		if late > 100*time.Millisecond+baseline {
			t.Errorf("returned %s after cancel%s (baseline %s): %s", late, where, baseline, r.Error)
		}
		t.Logf("returned %s after cancel%s (baseline %s): %s", late.Round(time.Millisecond), where, baseline.Round(time.Millisecond), r.Error)
	case <-time.After(10 * time.Second):
		t.Fatalf("the probe ignored its cancellation%s", where)
	}
}
