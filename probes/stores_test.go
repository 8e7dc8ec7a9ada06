package probes_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
)

const storePW = "Pr0be-Secret-Value"

func need(t testing.TB, startPeer func() (*peers.Server, error)) *peers.Server {
	t.Helper()
	s, err := startPeer()
	if errors.Is(err, peers.ErrMissing) {
		if ci() {
			t.Fatalf("CI must have this server: %v", err)
		}
		t.Skipf("SKIPPED LOUDLY: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func storeTarget(t testing.TB, st config.Store) hop.Target {
	t.Setenv("HOPPROBE_TEST_STORE_PW", storePW)
	if st.Password == nil {
		st.Password = &config.SecretRef{Env: "HOPPROBE_TEST_STORE_PW"}
	}
	return hop.Target{Address: st.Address, Store: &st}
}

func noSecret(t *testing.T, r hop.Result) {
	t.Helper()
	if strings.Contains(r.Error, storePW) || strings.Contains(r.Error, "wrong-"+storePW) {
		t.Fatalf("error leaks a password: %s", r.Error)
	}
}

func TestRedisAgainstRealServer(t *testing.T) {
	master := need(t, func() (*peers.Server, error) { return peers.Redis("", storePW, "") })
	replica := need(t, func() (*peers.Server, error) { return peers.Redis("", storePW, master.Addr) })
	st := config.Store{Name: "futuresnewredis", Kind: "redis", Address: master.Addr, Redis: &config.RedisOpts{Role: "master"}}
	r := run(t, hop.KindRedis, storeTarget(t, st), 2*time.Second)
	wantOK(t, r)
	if !phase(r, "connect") || !phase(r, "ping") || r.Details["role"] != "master" {
		t.Fatalf("phases %+v details %v", r.Phases, r.Details)
	}
	rs := st
	rs.Address = replica.Addr
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, rs), 2*time.Second), "futuresnewredis is a replica, want master")
	rs.Redis = &config.RedisOpts{Role: "replica"}
	wantOK(t, run(t, hop.KindRedis, storeTarget(t, rs), 2*time.Second))

	t.Setenv("HOPPROBE_TEST_WRONG_PW", "wrong-"+storePW)
	bad := st
	bad.Password = &config.SecretRef{Env: "HOPPROBE_TEST_WRONG_PW"}
	tg := hop.Target{Address: bad.Address, Store: &bad}
	r = run(t, hop.KindRedis, tg, 2*time.Second)
	wantFail(t, r, "refused the credentials")
	noSecret(t, r)

	hang := need(t, peers.Hang)
	st.Address = hang.Addr
	start := time.Now()
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, st), 300*time.Millisecond), "no answer within 300ms")
	if el := time.Since(start); el > time.Second {
		t.Fatalf("hanging redis held the probe for %s", el)
	}
	master.Stop()
	st.Address = master.Addr
	wantFail(t, run(t, hop.KindRedis, storeTarget(t, st), time.Second), "cannot connect")
}

func TestPostgresAgainstRealServer(t *testing.T) {
	pg := need(t, func() (*peers.Server, error) { return peers.Postgres("", "hopprobe", storePW) })
	st := config.Store{Name: "futuresnewdb", Kind: "postgres", Address: pg.Addr, Username: "hopprobe", Database: "postgres",
		Postgres: &config.PostgresOpts{SSLMode: "disable", Role: "primary"}}
	r := run(t, hop.KindPostgres, storeTarget(t, st), 5*time.Second)
	wantOK(t, r)
	if !phase(r, "connect") || !phase(r, "query") || r.Details["role"] != "primary" {
		t.Fatalf("phases %+v details %v", r.Phases, r.Details)
	}
	q := st
	q.Postgres = &config.PostgresOpts{SSLMode: "disable", Query: "SELECT current_setting('transaction_read_only')", Expect: "on"}
	wantOK(t, run(t, hop.KindPostgres, storeTarget(t, q), 5*time.Second))
	q.Postgres = &config.PostgresOpts{SSLMode: "disable", Role: "replica"}
	wantFail(t, run(t, hop.KindPostgres, storeTarget(t, q), 5*time.Second), "futuresnewdb is a primary, want replica")
	// The read-only transaction refuses writes even if a query tries one.
	q.Postgres = &config.PostgresOpts{SSLMode: "disable", Query: "CREATE TABLE hopprobe_must_not_exist (id int)"}
	wantFail(t, run(t, hop.KindPostgres, storeTarget(t, q), 5*time.Second), "read-only")

	t.Setenv("HOPPROBE_TEST_WRONG_PW", "wrong-"+storePW)
	bad := st
	bad.Password = &config.SecretRef{Env: "HOPPROBE_TEST_WRONG_PW"}
	r = run(t, hop.KindPostgres, hop.Target{Address: bad.Address, Store: &bad}, 5*time.Second)
	wantFail(t, r, "password authentication failed")
	noSecret(t, r)

	hang := need(t, peers.Hang)
	st.Address = hang.Addr
	wantHangBounded(t, hop.KindPostgres, storeTarget(t, st), 500*time.Millisecond)
	// A timeout that is not a whole number of seconds is the session's
	// whole budget: pgx's connect_timeout counts in seconds, and rounding
	// it down gave a 1.9 s hop 1 s to connect.
	start := time.Now()
	wantHangBounded(t, hop.KindPostgres, storeTarget(t, st), 1900*time.Millisecond)
	if el := time.Since(start); el < 1800*time.Millisecond {
		t.Errorf("a hanging peer failed a 1.9 s PostgreSQL hop after %s: the session had less than its timeout", el)
	}
	pg.Stop()
	st.Address = pg.Addr
	wantFail(t, run(t, hop.KindPostgres, storeTarget(t, st), 2*time.Second), "cannot open a session")
}

func TestEtcdAgainstRealServer(t *testing.T) {
	e := need(t, func() (*peers.Server, error) { return peers.Etcd("") })
	st := config.Store{Name: "etcdnew", Kind: "etcd", Address: e.Addr, Password: &config.SecretRef{Env: "HOPPROBE_TEST_EMPTY"}}
	t.Setenv("HOPPROBE_TEST_EMPTY", "")
	r := run(t, hop.KindEtcd, hop.Target{Address: e.Addr, Store: &st}, 3*time.Second)
	wantOK(t, r)
	if !phase(r, "status") || !phase(r, "read") || r.Details["raft_index"] == "" {
		t.Fatalf("phases %+v details %v", r.Phases, r.Details)
	}
	hang := need(t, peers.Hang)
	st.Address = hang.Addr
	wantHangBounded(t, hop.KindEtcd, hop.Target{Address: hang.Addr, Store: &st}, 500*time.Millisecond)
	// A cluster with one member down: the hop names the member that
	// refuses, not the healthy one it happened to ask first.
	down, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	st.Addresses = []string{e.Addr, down}
	r = run(t, hop.KindEtcd, hop.Target{Address: e.Addr, Store: &st}, 3*time.Second)
	wantFail(t, r, "cannot connect to "+down)
	st.Addresses = nil
	// A stopped etcd is named as refusing, at once: gRPC alone would
	// retry until the timeout and say "context deadline exceeded".
	e.Stop()
	st.Address = e.Addr
	r = run(t, hop.KindEtcd, hop.Target{Address: e.Addr, Store: &st}, 3*time.Second)
	wantFail(t, r, "connection refused")
	if strings.Contains(r.Error, "no answer within") || r.Duration > time.Second {
		t.Errorf("a refused etcd must fail as refused, not at the timeout: %s after %s", r.Error, r.Duration)
	}
}

func TestKafkaAgainstKfake(t *testing.T) {
	k := need(t, func() (*peers.Server, error) { return peers.Kafka("", "orders", "hopprobe-canary") })
	st := config.Store{Name: "kafkanew", Kind: "kafka", Address: k.Addr,
		Kafka: &config.KafkaOpts{Topics: []string{"orders"}, CanaryTopic: "hopprobe-canary"}}
	r := run(t, hop.KindKafka, hop.Target{Address: k.Addr, Store: &st}, 5*time.Second)
	wantOK(t, r)
	if !phase(r, "metadata") || !phase(r, "canary") {
		t.Fatalf("phases %+v", r.Phases)
	}
	missing := st
	missing.Kafka = &config.KafkaOpts{Topics: []string{"orders", "no-such-topic"}}
	wantFail(t, run(t, hop.KindKafka, hop.Target{Address: k.Addr, Store: &missing}, 3*time.Second), "no-such-topic")
	hang := need(t, peers.Hang)
	st.Address = hang.Addr
	wantHangBounded(t, hop.KindKafka, hop.Target{Address: hang.Addr, Store: &st}, 500*time.Millisecond)
	k.Stop()
	st.Address = k.Addr
	wantFail(t, run(t, hop.KindKafka, hop.Target{Address: k.Addr, Store: &st}, time.Second), "no bootstrap broker of kafkanew answered")
}

// wantHangBounded checks that a peer which accepts and never answers fails
// the probe at its timeout, with little slack.
func wantHangBounded(t *testing.T, kind hop.Kind, tg hop.Target, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	wantFail(t, run(t, kind, tg, timeout), "no answer within "+timeout.String())
	if el := time.Since(start); el > timeout+time.Second {
		t.Fatalf("a hanging %s peer held the probe for %s (timeout %s)", kind, el, timeout)
	}
}
