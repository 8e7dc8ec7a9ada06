package probes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// go-redis logs its own dial failures to stderr; the probe already
// reports them as the hop's error, so they only go to debug logs.
func init() { redis.SetLogger(redisLog{}) }

type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// redisProber connects (single node, cluster or sentinel), authenticates,
// sends PING and optionally checks the replication role.
type redisProber struct{}

func (redisProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	st := t.Store
	pw, tc, err := storeCreds(t)
	if err != nil {
		return err
	}
	// go-redis dials from its own goroutines, which may outlive this
	// probe: the connect time is handed over under a lock, never written
	// into rep from there.
	// Every connection, the cluster's and sentinel's too, is under the
	// probe's scope: go-redis trusts the lengths a peer announces, so the
	// byte budget is what bounds a reply.
	sc := scopeOf(ctx)
	var connect firstDial
	opts := &redis.UniversalOptions{
		Addrs: storeAddrs(st), Username: st.Username, Password: pw, TLSConfig: tc,
		DialTimeout: remaining(ctx), ReadTimeout: remaining(ctx), WriteTimeout: remaining(ctx),
		// One dial, no retries: a probe reports what it saw. A pool of
		// two is deliberate: go-redis starts a background re-dialer that
		// outlives Close by a second once failed dials reach PoolSize, and
		// a probe never fails more than one dial per pool.
		PoolSize: 2, DialerRetries: 1, MaxRetries: -1, DisableIdentity: true, Protocol: 2,
		// A custom Dialer replaces go-redis's TLS dial, so TLS is set up
		// here (and the handshake counted as part of connecting).
		Dialer: connect.wrap(func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := sc.dialTLS(ctx, network, addr, tc)
			if err != nil {
				return nil, err
			}
			return &respFrames{Conn: c, s: sc}, nil
		}),
	}
	var c redis.UniversalClient
	o := st.Redis
	switch {
	case o != nil && o.Mode == "sentinel":
		opts.MasterName = o.MasterName
		c = redis.NewFailoverClient(opts.Failover())
	case o != nil && o.Mode == "cluster":
		c = redis.NewClusterClient(opts.Cluster())
	default:
		if o != nil {
			opts.DB = o.DB
		}
		c = redis.NewClient(opts.Simple())
	}
	defer c.Close()
	start := time.Now()
	err = c.Ping(ctx).Err()
	connect.report(rep)
	since(rep, "ping", start)
	if err != nil {
		return redisError(st.Name, err)
	}
	if o == nil || o.Role == "" || o.Mode == "cluster" {
		return nil
	}
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return connected(fmt.Errorf("INFO replication on %s failed: %w", st.Name, err))
	}
	role := infoField(info, "role")
	if role == "slave" {
		role = "replica"
	}
	rep.Detail("role", role)
	if role != o.Role {
		return connected(fmt.Errorf("%s is a %s, want %s", st.Name, role, o.Role))
	}
	return nil
}

func redisError(name string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "NOAUTH"):
		return connected(fmt.Errorf("%s refused the credentials: %w", name, err))
	case strings.Contains(msg, "dial"):
		return fmt.Errorf("cannot connect to %s: %w", name, err)
	}
	return connected(fmt.Errorf("PING to %s failed: %w", name, err))
}

func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}

// redisKind is the redis block of a store.
var redisKind = config.StoreKind{
	HasBlock: func(s *config.Store) bool { return s.Redis != nil },
	Check: func(s *config.Store, c *config.Checker) {
		o := s.Redis
		if o.Mode != "" && !config.OneOf(o.Mode, "single", "cluster", "sentinel") {
			c.Errorf([]any{"redis", "mode"}, "mode %q must be single, cluster or sentinel", o.Mode)
		}
		if o.Mode == "sentinel" && o.MasterName == "" {
			c.Errorf([]any{"redis"}, "sentinel mode needs master_name")
		}
		if o.Role != "" && o.Role != "master" && o.Role != "replica" {
			c.Errorf([]any{"redis", "role"}, "role %q must be master or replica", o.Role)
		}
	},
}
