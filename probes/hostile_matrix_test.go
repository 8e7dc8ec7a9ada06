package probes_test

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/hostile"
	"github.com/allinx/hopprobe/probes"
)

// The classes of attack a peer's bytes can make, beyond reading too
// much: each kind must meet every one, with a hostile peer, a test, or
// the reason the class cannot reach it.
type attack string

const (
	amplification  attack = "amplification"   // a reply within the budget that decodes to far more
	depth          attack = "depth"           // nesting as deep as the peer likes
	goroutines     attack = "goroutines"      // peer bytes parsed on a library's goroutine, beyond Run's recover
	workFactor     attack = "work factor"     // a cost the peer chooses (SCRAM iterations, key sizes)
	redirect       attack = "redirect"        // a peer that sends the probe, and its credentials, elsewhere
	compressionOff attack = "compression off" // compression the probe never offered
)

var attacks = []attack{amplification, depth, goroutines, workFactor, redirect, compressionOff}

// cover is how one kind meets one class: hostile peers (internal/hostile,
// each run by TestHostilePeersFailHopsWithShortCleanReasons and, for
// amplification, TestAmplifyingPeersCostLittle), a test of its own, or
// why the class cannot reach the kind.
type cover struct {
	peers []string
	test  func(*testing.T)
	na    string
}

// onGoroutine: TestPeerBytesAreReadOnTheProbesGoroutine checks every kind.
var onGoroutine = cover{test: TestPeerBytesAreReadOnTheProbesGoroutine}

const noCredential = "the probe sends no credential on this kind"

var hostileMatrix = map[hop.Kind]map[attack]cover{
	hop.KindDNS: {
		amplification:  {peers: []string{"dns-record-flood"}},
		depth:          {peers: []string{"dns-cname-chain", "dns-escapes"}},
		goroutines:     onGoroutine,
		workFactor:     {na: "a resolver sets no cost for the client: an answer is unpacked once, within 64 KiB"},
		redirect:       {na: noCredential},
		compressionOff: {na: "DNS has no content compression; miekg/dns follows a name's compression pointers within the message, a bounded number per name"},
	},
	hop.KindTLS: {
		amplification:  {peers: []string{"tls-many-certificates", "tls-giant-handshake-message"}},
		depth:          {na: "crypto/x509 parses certificates by their fixed schema; chain building stops at 100 signature checks"},
		goroutines:     onGoroutine,
		workFactor:     {na: "the client's share of a handshake is public-key operations, and crypto/tls refuses RSA keys over 8,192 bits"},
		redirect:       {na: noCredential},
		compressionOff: {na: "crypto/tls implements no TLS compression"},
	},
	hop.KindHTTP: {
		amplification:  {peers: []string{"http-header-confetti", "http2-hpack-bomb"}},
		depth:          {peers: []string{"http-json-nesting"}},
		goroutines:     {peers: []string{"http2-continuation-flood", "http2-endless-stream"}, test: TestPeerBytesAreReadOnTheProbesGoroutine},
		workFactor:     {peers: []string{"http2-ping-flood", "http2-settings-flood"}},
		redirect:       {na: "a redirect is an answer, never followed, and " + noCredential},
		compressionOff: {peers: []string{"http-gzip-unoffered"}},
	},
	hop.KindWebSocket: {
		amplification:  {peers: []string{"websocket-deflate-unoffered", "websocket-header-flood"}},
		depth:          {na: "a message is compared as text, never parsed, and frames do not nest"},
		goroutines:     onGoroutine,
		workFactor:     {na: "a ping costs one pong, paid for by the ping's bytes under the budget"},
		redirect:       {na: "an answer other than 101 fails the hop, never followed, and " + noCredential},
		compressionOff: {peers: []string{"websocket-deflate-unoffered"}, test: TestAnUnofferedWebSocketExtensionIsRefused},
	},
	hop.KindPostgres: {
		amplification:  {peers: []string{"postgres-option-confetti"}},
		depth:          {na: "PostgreSQL's messages do not nest"},
		goroutines:     onGoroutine,
		workFactor:     {peers: []string{"postgres-scram-work-bomb"}, test: TestAPeerChosenSCRAMWorkFactorIsCapped},
		redirect:       {na: "the protocol names no other server: pgx dials the configured host only, and the password goes by SCRAM alone"},
		compressionOff: {na: "the protocol has no compression, and pgx offers none"},
	},
	hop.KindRedis: {
		amplification:  {peers: []string{"redis-element-flood", "redis-array-bomb"}},
		depth:          {peers: []string{"redis-deep-nesting", "redis-sentinel-nested-master"}},
		goroutines:     {peers: []string{"redis-sentinel-nested-master"}, test: TestPeerBytesAreReadOnTheProbesGoroutine},
		workFactor:     {na: "AUTH is a password check on the server; nothing the server sends sets the client's cost"},
		redirect:       {peers: []string{"redis-sentinel-elsewhere"}, test: TestRedirectedCredentialsFollowOnlyTheAllowList},
		compressionOff: {na: "RESP has no compression"},
	},
	hop.KindKafka: {
		amplification:  {peers: []string{"kafka-metadata-confetti"}},
		depth:          {na: "kmsg decodes by Kafka's fixed schema; unknown tagged fields are skipped as bytes"},
		goroutines:     onGoroutine,
		workFactor:     {peers: []string{"kafka-scram-work-bomb"}, test: TestAPeerChosenSCRAMWorkFactorIsCapped},
		redirect:       {peers: []string{"kafka-brokers-elsewhere"}, test: TestRedirectedCredentialsFollowOnlyTheAllowList},
		compressionOff: {test: probes.TestKafkaCanaryInflationIsBounded},
	},
	hop.KindEtcd: {
		amplification:  {peers: []string{"etcd-kv-flood"}},
		depth:          {peers: []string{"etcd-nested-groups"}},
		goroutines:     {peers: []string{"etcd-garbage-frames"}, test: TestPeerBytesAreReadOnTheProbesGoroutine},
		workFactor:     {na: "authentication is a password check on the server; the token it returns is opaque to the client"},
		redirect:       {na: "the client dials the configured endpoints only: the probe never syncs the member list"},
		compressionOff: {peers: []string{"etcd-gzip-unoffered"}},
	},
}

// Every kind the registry has meets every class; a kind added without
// its row, or a cell left empty, fails here.
func TestHostileMatrixCoversEveryKindAndClass(t *testing.T) {
	names := map[string]bool{}
	for _, n := range hostile.Names() {
		names[n] = true
	}
	for _, k := range probes.Kinds() {
		if _, ok := connectOnly[k]; ok {
			continue
		}
		row, ok := hostileMatrix[k]
		if !ok {
			t.Errorf("kind %s has no row in hostileMatrix: give it a peer, a test or a reason per class", k)
			continue
		}
		for _, a := range attacks {
			c := row[a]
			if len(c.peers) == 0 && c.test == nil && c.na == "" {
				t.Errorf("kind %s meets no %s attack: add a hostile peer, a test or the reason it cannot reach %s", k, a, k)
			}
			for _, p := range c.peers {
				if !names[p] {
					t.Errorf("kind %s, %s: no hostile peer %q", k, a, p)
				}
			}
		}
	}
}

// While a probe waits on a peer that never answers, every goroutine
// reading that peer's connection is the probe's own (inside Run's
// recover), except for the kinds whose client library reads on its own
// goroutine: those are listed with what bounds them, and the test fails
// if one stops being true either way.
func TestPeerBytesAreReadOnTheProbesGoroutine(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	libraryReaders := map[hop.Kind]string{
		hop.KindEtcd: "gRPC's transport reader: frames checked against the budget, MaxCallRecvMsgSize, the header list limit, the field count",
	}
	for _, k := range probes.Kinds() {
		if _, ok := connectOnly[k]; ok {
			continue
		}
		t.Run(string(k), func(t *testing.T) {
			// A reader left by an earlier probe (a library goroutine
			// that has not yet seen its closed connection) would be
			// taken for this one's.
			for deadline := time.Now().Add(3 * time.Second); len(peerReaders()) > 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("a reader of an earlier probe's peer is still running:\n%s", peerReaders()[0])
				}
			}
			addr := silentPeer(t, k == hop.KindDNS)
			kind, tg := hostileTarget(string(k)+"-silent", addr)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				probes.Run(ctx, kind, &tg, 30*time.Second)
			}()
			defer func() { cancel(); <-done }()
			var readers []string
			for deadline := time.Now().Add(5 * time.Second); len(readers) == 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				readers = peerReaders()
			}
			if len(readers) == 0 {
				t.Fatal("no goroutine read the peer's connection within 5 s")
			}
			outside := 0
			for _, g := range readers {
				if !strings.Contains(g, "hopprobe/probes.Run(") {
					outside++
				}
			}
			why, library := libraryReaders[k]
			switch {
			case outside > 0 && !library:
				t.Errorf("%d goroutines read the peer outside the probe, e.g.:\n%s", outside, firstOutside(readers))
			case outside == 0 && library:
				t.Errorf("listed as read by a library goroutine (%s), but every reader is the probe's: update the list and the README", why)
			}
		})
	}
}

// peerReaders are the stacks of goroutines reading a guarded connection.
func peerReaders() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "probes.(*guardedConn).Read") || strings.Contains(g, "probes.(*guardedPacketConn).ReadFrom") {
			out = append(out, g)
		}
	}
	return out
}

func firstOutside(readers []string) string {
	for _, g := range readers {
		if !strings.Contains(g, "hopprobe/probes.Run(") {
			return g
		}
	}
	return ""
}

// A peer that names an address the topology does not is refused, and
// its listener never sees a connection; listed under the store's allow,
// the probe goes there (so the refusal is the gate's, not an accident).
func TestRedirectedCredentialsFollowOnlyTheAllowList(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	for _, name := range []string{"redis-sentinel-elsewhere", "kafka-brokers-elsewhere"} {
		t.Run(name, func(t *testing.T) {
			p := startHostile(t, name)
			kind, tg := hostileTarget(name, p.Addr)
			wantFail(t, probes.Run(context.Background(), kind, &tg, 5*time.Second), "credentials withheld: its peers sent the probe to "+p.Elsewhere)
			if n := p.Redirected.Load(); n != 0 {
				t.Fatalf("the undocumented address saw %d connections", n)
			}
			allowed := *tg.Store
			allowed.Allow = []string{p.Elsewhere}
			tg.Store = &allowed
			probes.Run(context.Background(), kind, &tg, 5*time.Second)
			if p.Redirected.Load() == 0 {
				t.Fatalf("allowed, the probe still did not go to %s", p.Elsewhere)
			}
		})
	}
}

// What a hostile reply costs in allocations, over what the same probe
// costs against a port that refuses, measured in the same run: within
// maxAllocMultiple of the probe's byte budget, for every peer. Every
// byte allocated counts, freed or not, so the probe's peak is below
// this. The peers build their replies once, before the measurement,
// but run in this process: what they allocate per connection counts
// too. Under -race (make test) allocations run higher: the largest, an
// HTTP/2 SETTINGS flood whose every 9-byte frame net/http's reader
// decodes and acknowledges, measured 4.1× there and 1.6× without.
const maxAllocMultiple = 6

func TestAmplifyingPeersCostLittle(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_HOSTILE_PW", hostilePW)
	closed := refusingPort(t)
	const budget = config.DefaultMaxResponseBytes
	for _, name := range hostile.Names() {
		t.Run(name, func(t *testing.T) {
			p := startHostile(t, name)
			kind, tg := hostileTarget(name, p.Addr)
			_, base := hostileTarget(name, closed)
			if kind == hop.KindDNS {
				base.Resolver = closed
			}
			baseline := probes.AllocatedBy(func() { probes.Run(context.Background(), kind, &base, 5*time.Second) })
			cost := probes.AllocatedBy(func() { probes.Run(context.Background(), kind, &tg, 5*time.Second) })
			extra := int64(cost) - int64(baseline)
			t.Logf("%s: %.2f× the %d MiB budget (%d KiB over the baseline's %d KiB)", name, float64(extra)/budget, budget>>20, extra>>10, baseline>>10)
			if extra > maxAllocMultiple*budget {
				t.Errorf("the probe allocated %d MiB over its baseline against %s, more than %d× its %d MiB budget", extra>>20, name, maxAllocMultiple, budget>>20)
			}
		})
	}
}

// refusingPort is a loopback address where nothing listens.
func refusingPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
