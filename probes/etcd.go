package probes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// etcdProber asks every endpoint for its status (a leader must exist) and
// reads a key linearizably, which needs a working quorum.
type etcdProber struct{}

func (etcdProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	st := t.Store
	pw, tc, err := storeCreds(t)
	if err != nil {
		return err
	}
	eps := storeAddrs(st)
	start := time.Now()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	w := &etcdConns{tls: tc != nil, fail: fail}
	sc := scopeOf(ctx)
	w.scope = sc
	c, err := clientv3.New(clientv3.Config{
		Endpoints: eps, DialTimeout: remaining(ctx), TLS: tc, Username: st.Username, Password: pw,
		Context: ctx, Logger: zap.NewNop(), RejectOldCluster: false,
		// The client accepts 2 GiB messages by default; a status and a
		// one-key read need a few hundred bytes.
		MaxCallRecvMsgSize: int(sc.limit),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(w.dial),
			grpc.WithMaxHeaderListSize(maxHeaderBytes),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newCountedCodec()))},
	})
	if err != nil {
		return fmt.Errorf("cannot create a client for %s: %w", st.Name, err)
	}
	defer c.Close()
	// What the connection watcher saw is the reason, whichever endpoint
	// the failing call was for (the client dials all of them).
	watched := func() error {
		// The hop is the store: its name is not said again.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
			return cause
		}
		return nil
	}
	// Every member must see a leader: a member cut off from the others
	// answers its status, without one.
	var last *clientv3.StatusResponse
	for _, ep := range eps {
		status, err := c.Status(ctx, ep)
		if err != nil {
			if w := watched(); w != nil {
				return w
			}
			return fmt.Errorf("status of %s endpoint %s: %w", st.Name, ep, err)
		}
		if status.Leader == 0 {
			return connected(fmt.Errorf("%s endpoint %s (member %x) has no leader", st.Name, ep, status.Header.GetMemberId()))
		}
		last = status
	}
	since(rep, "status", start)
	rep.Detail("leader", strconv.FormatUint(last.Leader, 16))
	rep.Detail("member", strconv.FormatUint(last.Header.GetMemberId(), 16))
	rep.Detail("version", last.Version)
	rep.Detail("raft_index", strconv.FormatUint(last.RaftIndex, 10))
	rep.Detail("db_size_bytes", strconv.FormatInt(last.DbSize, 10))
	key := "health"
	if st.Etcd != nil && st.Etcd.Key != "" {
		key = st.Etcd.Key
	}
	start = time.Now()
	_, err = c.Get(ctx, key)
	since(rep, "read", start)
	if err != nil {
		if w := watched(); w != nil {
			return w
		}
		return connected(fmt.Errorf("linearizable read of %q on %s failed: %w", key, st.Name, err))
	}
	return nil
}

// etcdConns watches the connections the gRPC client makes. gRPC retries a
// refused connection, or one to a peer that does not speak its protocol,
// until the deadline and then says only "context deadline exceeded": the
// hop would read as a hang. Instead the first refusal, or a first answer
// that is neither an HTTP/2 SETTINGS frame (plaintext) nor a TLS record,
// ends the probe at once with that reason.
type etcdConns struct {
	tls   bool
	fail  context.CancelCauseFunc
	scope *scope

	mu    sync.Mutex
	dials map[string]int
}

// maxEtcdDials is how many connections a probe opens to one endpoint.
// gRPC reconnects after every protocol error until the deadline; a peer
// that breaks each connection would otherwise have the probe build and
// tear down a transport some hundred times in its timeout.
const maxEtcdDials = 3

func (w *etcdConns) dial(ctx context.Context, addr string) (net.Conn, error) {
	w.mu.Lock()
	if w.dials == nil {
		w.dials = map[string]int{}
	}
	w.dials[addr]++
	n := w.dials[addr]
	w.mu.Unlock()
	if n > maxEtcdDials {
		err := fmt.Errorf("%s broke %d connections in a row (gRPC reconnects; the probe stops at %d)", addr, maxEtcdDials, maxEtcdDials)
		w.fail(err)
		return nil, err
	}
	c, err := w.scope.dial(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			w.fail(fmt.Errorf("cannot connect to %s: %w", addr, err))
		}
		return nil, err
	}
	return &firstAnswer{Conn: c, tls: w.tls, fail: w.fail}, nil
}

// firstAnswer checks the first bytes a peer sends.
type firstAnswer struct {
	net.Conn
	tls  bool
	fail context.CancelCauseFunc

	mu   sync.Mutex
	head []byte
	done bool
}

func (f *firstAnswer) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || n == 0 {
		return n, err
	}
	f.head = append(f.head, p[:min(n, 4-len(f.head))]...)
	switch {
	case f.tls && f.head[0] != 0x16 && f.head[0] != 0x15: // handshake, alert
		f.done = true
		f.fail(connected(fmt.Errorf("%s answered, but not with TLS (first byte %#02x); is this an etcd client port with TLS?", f.RemoteAddr(), f.head[0])))
	case f.tls:
		f.done = true
	case len(f.head) == 4:
		f.done = true
		if f.head[3] != 0x04 { // an HTTP/2 server starts with SETTINGS
			f.fail(connected(fmt.Errorf("%s answered, but not with HTTP/2 (gRPC); is this an etcd client port, and is TLS off on both sides?", f.RemoteAddr())))
		}
	}
	return n, err
}

// etcdKind is the etcd block of a store (the key to read); nothing in it
// needs checking.
var etcdKind = config.StoreKind{HasBlock: func(s *config.Store) bool { return s.Etcd != nil }}
