package probes

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

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
	// Only go-redis's plain client, whose replies are read on the
	// goroutine that sent the command: this probe's, inside Run's
	// recover. Its failover and cluster clients parse a sentinel's and a
	// cluster's replies on goroutines of their own (the master lookup,
	// the +switch-master subscription, slot reloads), where one malformed
	// reply panics the whole process. Sentinel and cluster are spoken
	// here instead, command by command.
	o := st.Redis
	simple := opts.Simple()
	// Maintenance notifications would look the store's host name up
	// through the default resolver, outside the probe's dial (its budget,
	// its source address, its cancellation), and ask the server for a
	// push subscription: a probe wants neither.
	simple.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch {
	case o != nil && o.Mode == "sentinel":
		master, err := sentinelMaster(ctx, st.Name, simple, storeAddrs(st), o.MasterName)
		if err != nil {
			connect.report(rep)
			return err
		}
		rep.Detail("master", master)
		simple.Addr = master
	case o != nil && o.Mode == "cluster":
		return probeCluster(ctx, st, simple, &connect, rep)
	case o != nil:
		simple.DB = o.DB
	}
	c := redis.NewClient(simple)
	defer c.Close()
	start := time.Now()
	err = c.Ping(ctx).Err()
	connect.report(rep)
	since(rep, "ping", start)
	if err != nil {
		return redisError(st.Name, err)
	}
	if o == nil || o.Role == "" {
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

// sentinelMaster asks the store's sentinels, in order, where the master
// named name is (SENTINEL get-master-addr-by-name), without credentials:
// a sentinel gets none. The first answer wins.
func sentinelMaster(ctx context.Context, store string, base *redis.Options, sentinels []string, name string) (string, error) {
	var errs []string
	answered := false
	for _, addr := range sentinels {
		o := *base
		o.Addr, o.Username, o.Password, o.DB = addr, "", "", 0
		c := redis.NewClient(&o)
		reply, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", name).StringSlice()
		c.Close()
		switch {
		case err == redis.Nil:
			answered = true
			errs = append(errs, fmt.Sprintf("sentinel %s does not know master %q", addr, name))
		case err != nil:
			errs = append(errs, fmt.Sprintf("sentinel %s: %v", addr, err))
			answered = answered || !Unreachable(err)
		case len(reply) != 2:
			answered = true
			errs = append(errs, fmt.Sprintf("sentinel %s answered %d fields for master %q, want host and port", addr, len(reply), name))
		default:
			return net.JoinHostPort(reply[0], reply[1]), nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	err := fmt.Errorf("%s: no sentinel named the master %q: %s", store, name, strings.Join(errs, "; "))
	if !answered {
		return "", fmt.Errorf("cannot connect to %w", err) // no sentinel answered at all
	}
	return "", connected(err)
}

// probeCluster checks a Redis Cluster through its documented nodes, one
// by one on this goroutine: each answers PING, and the first to answer
// says CLUSTER INFO cluster_state:ok. The probe follows no redirect and
// reloads no slots, so it dials only the documented nodes.
func probeCluster(ctx context.Context, st *config.Store, base *redis.Options, connect *firstDial, rep *hop.Report) error {
	start := time.Now()
	defer func() { connect.report(rep); since(rep, "ping", start) }()
	var state string
	for _, addr := range storeAddrs(st) {
		o := *base
		o.Addr = addr
		c := redis.NewClient(&o)
		err := c.Ping(ctx).Err()
		if err == nil && state == "" {
			var info string
			if info, err = c.ClusterInfo(ctx).Result(); err == nil {
				state = infoField(info, "cluster_state")
			}
		}
		c.Close()
		if err != nil {
			return redisError(st.Name+" node "+addr, err)
		}
	}
	rep.Detail("cluster_state", state)
	if state != "ok" {
		return connected(fmt.Errorf("%s: CLUSTER INFO says cluster_state:%s", st.Name, cmp.Or(state, "(none)")))
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
	// Lines, not Split: a reply of a million empty lines would otherwise
	// be built into a million strings.
	for line := range strings.Lines(info) {
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
