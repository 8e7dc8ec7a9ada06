package config_test

import (
	"strings"
	"testing"

	"github.com/allinx/hopprobe/config"
)

const base = `entries:
  - name: public
    hops:
      - name: edge
        address: 127.0.0.1:8443
routes:
  - hosts: [api.example.test]
    path: /*
    service: ns/api:8080
services:
  - name: api
    namespace: ns
    type: ClusterIP
    ports: [{port: 8080, protocol: http}]
    depends_on: [db]
stores:
  - name: db
    kind: postgres
    address: 127.0.0.1:5432
    password: {env: DB_PASSWORD}
`

func TestParseAcceptsAMinimalTopology(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Defaults.Interval != config.DefaultInterval || cfg.Defaults.Timeout != config.DefaultTimeout {
		t.Errorf("defaults not applied: %+v", cfg.Defaults)
	}
	if got := cfg.Routes[0].Entries; len(got) != 1 || got[0] != "public" {
		t.Errorf("route entries default to the first entry, got %v", got)
	}
	if m := cfg.Metrics; len(m.DurationBuckets) != 1 || m.DurationBuckets[0] != config.LatencyObjective || m.Phases != config.PhasesEdge || !m.NativeOn() {
		t.Errorf("metrics defaults not applied: %+v", m)
	}
}

// Each bad topology must be rejected with file:line and a reason an
// operator can act on.
func TestParseRejectsBadTopologyWithFileAndLine(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown key", "    path: /*\n", "    path: /*\n    paht: /x\n", `t.yaml:9: unknown key "paht" in a route`},
		{"route to undefined service", "service: ns/api:8080", "service: ns/nope:8080", "t.yaml:9: route api.example.test/* goes to ns/nope, which is not defined under services"},
		{"route to unexposed port", "service: ns/api:8080", "service: ns/api:9090", "t.yaml:9: route api.example.test/* goes to port 9090, which service ns/api does not expose"},
		{"port out of range", "{port: 8080, protocol: http}", "{port: 8080, protocol: http}, {port: 70000}", "t.yaml:14: port 70000 of ns/api is out of range 1-65535"},
		{"duplicate service", "stores:\n", "  - {name: api, namespace: ns, type: ClusterIP}\nstores:\n", "t.yaml:16: duplicate service ns/api"},
		{"undefined store", "depends_on: [db]", "depends_on: [db, cache]", "t.yaml:15: service ns/api depends on store \"cache\", which is not defined under stores"},
		{"inline secret", "password: {env: DB_PASSWORD}", "password: hunter2", "t.yaml:20: secrets may not be written inline"},
		{"bad duration", "entries:\n", "defaults: {interval: soon}\nentries:\n", "t.yaml:1: wrong type"},
		{"timeout above interval", "entries:\n", "defaults: {interval: 5s, timeout: 10s}\nentries:\n", "t.yaml:1: timeout 10s is longer than interval 5s"},
		{"node port outside range", "{port: 8080, protocol: http}", "{port: 8080, node_port: 8081, protocol: http}", "t.yaml:14: service ns/api is ClusterIP; only NodePort and LoadBalancer services have node ports"},
		{"undefined entry", "    path: /*\n", "    path: /*\n    entries: [side]\n", "t.yaml:9: entry \"side\" is not defined under entries"},
		{"bad yaml", "    path: /*\n", "    path: [/*\n", "t.yaml:"},
		{"buckets without the objective", "entries:\n", "metrics:\n  duration_buckets: [0.1, 1]\nentries:\n", `t.yaml:2: duration_buckets must include 0.5, the latency objective's bound that the shipped rules read (le="0.5")`},
		{"buckets out of order", "entries:\n", "metrics:\n  duration_buckets: [0.5, 0.1]\nentries:\n", "t.yaml:2: bucket bounds must be ascending: 0.1 follows 0.5"},
		{"negative bucket", "entries:\n", "metrics:\n  duration_buckets: [-1, 0.5]\nentries:\n", "t.yaml:2: a bucket bound must be a positive number of seconds, got -1"},
		{"chain names no hop", "    path: /*\n", "    path: /*\n    probe: {chain: [edge, apisix]}\n", `t.yaml:9: chain names "apisix", which is not a hop of entry "public"`},
		{"unknown component", "        address: 127.0.0.1:8443\n", "        address: 127.0.0.1:8443\n        component: varnish\n", `t.yaml:6: component "varnish" has no built-in fingerprints; use one of cloudfront, alb, nlb, apisix, nginx, or give fingerprints`},
		{"bad fingerprint header", "        address: 127.0.0.1:8443\n", "        address: 127.0.0.1:8443\n        fingerprints: [{header: \"X Edge\"}]\n", `t.yaml:6: fingerprint header "X Edge" is not an HTTP header name`},
		{"credential fingerprint header", "        address: 127.0.0.1:8443\n", "        address: 127.0.0.1:8443\n        fingerprints: [{header: Set-Cookie, contains: edge}]\n", `t.yaml:6: fingerprint header "Set-Cookie" can carry credentials, which would be kept as evidence; pick a header that identifies the component`},
		{"history out of range", "entries:\n", "defaults: {history: 5000}\nentries:\n", "t.yaml:1: history must be between 1 and 1000 walks, got 5000"},
		{"unknown phases", "entries:\n", "metrics: {phases: some}\nentries:\n", `t.yaml:1: phases must be edge, all or none, got "some"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.from) {
				t.Fatalf("case does not apply: %q not in base", c.from)
			}
			src := strings.Replace(base, c.from, c.to, 1)
			_, err := config.Parse("t.yaml", []byte(src))
			if err == nil {
				t.Fatalf("accepted a bad topology:\n%s", src)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

func TestInlineSecretIsNeverEchoed(t *testing.T) {
	src := strings.Replace(base, "password: {env: DB_PASSWORD}", "password: s3cr3t-value", 1)
	_, err := config.Parse("t.yaml", []byte(src))
	if err == nil || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("inline secret accepted or echoed: %v", err)
	}
}

func TestSecretRefResolvesFromEnvAndFile(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_SECRET", "from-env")
	ref := &config.SecretRef{Env: "HOPPROBE_TEST_SECRET"}
	if v, err := ref.Resolve(); err != nil || v != "from-env" {
		t.Fatalf("env secret: %q %v", v, err)
	}
	missing := &config.SecretRef{Env: "HOPPROBE_TEST_UNSET"}
	if _, err := missing.Resolve(); err == nil || !strings.Contains(err.Error(), "HOPPROBE_TEST_UNSET is not set") {
		t.Fatalf("missing env secret: %v", err)
	}
	if s := ref.String(); strings.Contains(s, "from-env") {
		t.Fatalf("String() leaks the secret: %s", s)
	}
}

func TestRelativeFilesResolveAgainstTheConfigDir(t *testing.T) {
	src := strings.Replace(base, "password: {env: DB_PASSWORD}", "password: {file: secrets/db}\n    tls: {ca_file: ca.pem}", 1)
	cfg, err := config.Parse("/etc/hopprobe/topology.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Stores[0].Password.File; got != "/etc/hopprobe/secrets/db" {
		t.Errorf("secret file = %s", got)
	}
	if got := cfg.Stores[0].TLS.CAFile; got != "/etc/hopprobe/ca.pem" {
		t.Errorf("ca file = %s", got)
	}
}

// An address with user information is refused without echoing it: the
// part before @ is often a password.
func TestAddressWithUserInfoIsRefusedWithoutEcho(t *testing.T) {
	src := strings.Replace(base, "address: 127.0.0.1:5432", "address: admin:Pa55-w0rd-X@db.internal:5432", 1)
	_, err := config.Parse("t.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "t.yaml:19: address contains user information") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "Pa55-w0rd-X") || strings.Contains(err.Error(), "admin") {
		t.Fatalf("error echoes the credentials: %v", err)
	}
}

// A password too short to scrub from messages is a problem of its
// store, reported with where it comes from and never its value: the
// topology still loads (the store's hops fail when probed), and one not
// set yet is left to the probe.
func TestShortSecretIsAProblemOfItsStore(t *testing.T) {
	t.Setenv("DB_PASSWORD", "prod")
	cfg, err := config.Parse("t.yaml", []byte(base))
	if err != nil || len(cfg.Problems) != 1 ||
		!strings.Contains(cfg.Problems.Error(), "t.yaml:20: the secret from env:DB_PASSWORD: it is 4 characters long; hopprobe refuses passwords shorter than 8") {
		t.Fatalf("error %v, problems %v", err, cfg.Problems)
	}
	if strings.Contains(cfg.Problems.Error(), "prod") {
		t.Fatalf("the problem shows the secret: %v", cfg.Problems)
	}
	t.Setenv("DB_PASSWORD", "long-enough-secret")
	if cfg, err := config.Parse("t.yaml", []byte(base)); err != nil || len(cfg.Problems) != 0 {
		t.Fatal(err, cfg.Problems)
	}
}

func TestStoreLimitsAndAuthMethodsAreChecked(t *testing.T) {
	for _, c := range []struct{ to, want string }{
		{"password: {env: DB_PASSWORD}\n    postgres: {require_auth: [trust]}", `require_auth method "trust" must be scram-sha-256, md5, password or none`},
		{"password: {env: DB_PASSWORD}\n    max_response_bytes: 100", "max_response_bytes must be at least 16384"},
	} {
		src := strings.Replace(base, "password: {env: DB_PASSWORD}", c.to, 1)
		if _, err := config.Parse("t.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	cfg, err := config.Parse("t.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Defaults.MaxResponseBytes != config.DefaultMaxResponseBytes {
		t.Errorf("max_response_bytes default %d", cfg.Defaults.MaxResponseBytes)
	}
}
