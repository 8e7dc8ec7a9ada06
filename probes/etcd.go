package probes

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdProber asks every endpoint for its status (a leader must exist) and
// reads a key linearizably, which needs a working quorum.
type etcdProber struct{}

func (etcdProber) Probe(ctx context.Context, t *Target, rep *Report) error {
	st := t.Store
	pw, tc, err := storeCreds(t)
	if err != nil {
		return err
	}
	eps := storeAddrs(st)
	start := time.Now()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: eps, DialTimeout: remaining(ctx), TLS: tc, Username: st.Username, Password: pw,
		Context: ctx, Logger: zap.NewNop(), RejectOldCluster: false,
	})
	if err != nil {
		return fmt.Errorf("cannot create a client for %s: %w", st.Name, err)
	}
	defer c.Close()
	var status *clientv3.StatusResponse
	for _, ep := range eps {
		if status, err = c.Status(ctx, ep); err != nil {
			return fmt.Errorf("status of %s endpoint %s: %w", st.Name, ep, err)
		}
	}
	rep.since("status", start)
	if status.Leader == 0 {
		return connected(fmt.Errorf("%s has no leader", st.Name))
	}
	rep.Detail("raft_index", strconv.FormatUint(status.RaftIndex, 10))
	rep.Detail("db_size_bytes", strconv.FormatInt(status.DbSize, 10))
	key := "health"
	if st.Etcd != nil && st.Etcd.Key != "" {
		key = st.Etcd.Key
	}
	start = time.Now()
	_, err = c.Get(ctx, key)
	rep.since("read", start)
	if err != nil {
		return connected(fmt.Errorf("linearizable read of %q on %s failed: %w", key, st.Name, err))
	}
	return nil
}
