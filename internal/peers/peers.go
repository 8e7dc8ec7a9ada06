// Package peers starts real data-store servers on free loopback ports
// for tests and the demo: redis-server, postgres and etcd from the
// machine's packages, Kafka in-process (kfake). Each start function
// returns ErrMissing when the server binary is not installed, so that a
// test can skip loudly instead of failing for the wrong reason.
package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrMissing means the server's binary is not on this machine.
var ErrMissing = errors.New("server binary not installed (.ci/run installs it)")

// Server is a running peer.
type Server struct {
	Addr string
	stop func()
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// handedOut remembers every port FreePort gave, so that two servers
// started by one process never get the same one before either binds it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback address nobody listens on (TCP and UDP).
// It is chosen below Linux's ephemeral range (32768 and up), so that an
// outgoing connection cannot take it between now and the server's bind,
// and never twice in one process.
func FreePort() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 500 {
		p := 20000 + rand.IntN(12000)
		if handedOut.ports[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		handedOut.ports[p] = true
		return addr, nil
	}
	return "", errors.New("no free loopback port between 20000 and 32000")
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// start runs cmd and waits up to 30 s until addr accepts connections.
func start(cmd *exec.Cmd, addr string, cleanup func()) (*Server, error) {
	return Start(cmd, addr, 30*time.Second, cleanup)
}

// Start runs cmd in a process group of its own, killed with the test
// binary, and waits up to within until addr accepts connections; cleanup
// runs once the process is gone. Without Stdout and Stderr set, the
// server's last words explain a server that dies at start.
func Start(cmd *exec.Cmd, addr string, within time.Duration, cleanup func()) (*Server, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group, killed with the test binary: nothing outlives a test.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Keep what the server says, to explain a server that dies at start.
	var out tailBuffer
	if cmd.Stdout == nil && cmd.Stderr == nil {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		cleanup()
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return &Server{Addr: addr, stop: stop}, nil
		}
		select {
		case <-done:
			cleanup()
			return nil, fmt.Errorf("%s exited before it listened on %s: %s", cmd.Path, addr, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	return nil, fmt.Errorf("%s did not listen on %s within %v", cmd.Path, addr, within)
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", names[0], ErrMissing)
}

// orFree returns addr, or a free loopback address when addr is empty.
func orFree(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	return FreePort()
}

// Redis starts redis-server on addr ("" = a free port) with requirepass;
// replicaOf makes it a replica.
func Redis(addr, password, replicaOf string) (*Server, error) {
	args := []string{"--requirepass", password}
	if replicaOf != "" {
		h, p, _ := net.SplitHostPort(replicaOf)
		args = append(args, "--replicaof", h, p, "--masterauth", password)
	}
	return redisServer(addr, false, args...)
}

// RedisTLS starts redis-server that speaks only TLS with the PKI's server
// certificate and demands a client certificate signed by its CA.
func RedisTLS(password string, pki *PKI) (*Server, error) {
	return RedisTLSOn("", password, pki)
}

// RedisTLSOn is RedisTLS on addr ("" = a free port on 127.0.0.1), which
// may be any loopback address.
func RedisTLSOn(addr, password string, pki *PKI) (*Server, error) {
	return redisServer(addr, true, "--requirepass", password,
		"--tls-cert-file", pki.ServerCert, "--tls-key-file", pki.ServerKey,
		"--tls-ca-cert-file", pki.CA, "--tls-auth-clients", "yes")
}

// RedisSentinel starts a sentinel that monitors master under masterName.
func RedisSentinel(master, masterName, password string) (*Server, error) {
	dir, err := os.MkdirTemp("", "hopprobe-sentinel-")
	if err != nil {
		return nil, err
	}
	h, p, _ := net.SplitHostPort(master)
	conf := filepath.Join(dir, "sentinel.conf")
	// Sentinel rewrites its file, so it must be its own and writable.
	body := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel auth-pass %s %s\n", masterName, h, p, masterName, password)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s, err := redisServer("", false, conf, "--sentinel")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := s.stop
	s.stop = func() { stop(); os.RemoveAll(dir) }
	return s, nil
}

// RedisCluster starts a one-node Redis Cluster that owns every hash slot.
func RedisCluster(password string) (*Server, error) {
	dir, err := os.MkdirTemp("", "hopprobe-rcluster-")
	if err != nil {
		return nil, err
	}
	// The cluster bus defaults to port+10000, which lands in the ephemeral
	// range; give it a free port of its own.
	bus, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s, err := redisServer("", false, "--requirepass", password, "--masterauth", password,
		"--cluster-enabled", "yes", "--cluster-port", port(bus),
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--dir", dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := s.stop
	s.stop = func() { stop(); os.RemoveAll(dir) }
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: password, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("assigning hash slots: %w", err)
	}
	for {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return s, nil
		}
		if ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("redis cluster on %s never reached cluster_state:ok: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisServer(addr string, useTLS bool, args ...string) (*Server, error) {
	bin, err := lookPath("redis-server")
	if err != nil {
		return nil, err
	}
	if addr, err = orFree(addr); err != nil {
		return nil, err
	}
	listen := []string{"--port", port(addr)}
	if useTLS {
		listen = []string{"--port", "0", "--tls-port", port(addr)}
	}
	// A sentinel config file must come first on the command line.
	var conf []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "--") {
		conf, args = args[:1], args[1:]
	}
	host, _, _ := net.SplitHostPort(addr)
	all := append(append(append(conf, listen...), "--bind", host, "--save", "", "--appendonly", "no", "--loglevel", "warning"), args...)
	return start(exec.Command(bin, all...), addr, func() {})
}

// Etcd starts a single-member etcd serving clients on addr ("" = free).
func Etcd(client string) (*Server, error) { return etcdServer(client, nil) }

// EtcdLeaderless starts one member of a two-member etcd cluster whose
// other member never comes: it answers its status, without a leader.
func EtcdLeaderless() (*Server, error) {
	ghost, err := FreePort()
	if err != nil {
		return nil, err
	}
	return etcdServer("", nil, "ghost=http://"+ghost)
}

// EtcdTLS starts etcd serving clients over TLS only, demanding a client
// certificate signed by the PKI's CA.
func EtcdTLS(pki *PKI) (*Server, error) { return etcdServer("", pki) }

func etcdServer(client string, pki *PKI, others ...string) (*Server, error) {
	bin, err := lookPath("etcd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hopprobe-etcd-")
	if err != nil {
		return nil, err
	}
	if client, err = orFree(client); err != nil {
		return nil, err
	}
	peer, _ := FreePort()
	scheme := "http://"
	var extra []string
	if pki != nil {
		scheme = "https://"
		extra = []string{"--cert-file", pki.ServerCert, "--key-file", pki.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", pki.CA}
	}
	cmd := exec.Command(bin, append([]string{"--name", "probe", "--data-dir", dir,
		"--listen-client-urls", scheme + client, "--advertise-client-urls", scheme + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", strings.Join(append([]string{"probe=http://" + peer}, others...), ","), "--log-level", "error"}, extra...)...)
	return start(cmd, client, func() { os.RemoveAll(dir) })
}

// Postgres initialises a cluster with user/password (scram) in a temp dir
// and starts it. As root it runs as the postgres user, since PostgreSQL
// refuses to run as root.
func Postgres(addr, username, password string) (*Server, error) {
	return postgresServer(addr, username, password, nil)
}

// PostgresTLS is Postgres that accepts only TLS sessions which present
// both the password and a client certificate whose common name is the
// user (pg_hba "hostssl ... clientcert=verify-full").
func PostgresTLS(username, password string, pki *PKI) (*Server, error) {
	return postgresServer("", username, password, pki)
}

func postgresServer(addr, username, password string, pki *PKI) (*Server, error) {
	initdb, err := lookPath("initdb", "/usr/lib/postgresql/15/bin/initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := lookPath("postgres", "/usr/lib/postgresql/15/bin/postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hopprobe-pg-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	pg, err := initPostgres(dir, initdb, username, password, pki)
	if err == nil {
		addr, err = orFree(addr)
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	cmd := pg.command(postgres, append([]string{"-D", pg.data, "-p", port(addr), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}, pg.sslArgs...)...)
	srv, err := start(cmd, addr, cleanup)
	if err != nil {
		return nil, err
	}
	if err := awaitSession(pg.dsn+" port="+port(addr), username, password); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("postgres on %s never accepted a session: %w", addr, err)
	}
	return srv, nil
}

// pgCluster is a data directory initdb made, and how to run a server on
// it.
type pgCluster struct {
	data    string
	sslArgs []string
	// command runs a PostgreSQL program as the user that owns the
	// cluster: the postgres user when the tests run as root.
	command func(bin string, args ...string) *exec.Cmd
	dsn     string // how a client connects, without the port
}

// initPostgres makes a cluster in dir whose user authenticates with
// SCRAM, and with pki, TLS with client certificates.
func initPostgres(dir, initdb, username, password string, pki *PKI) (*pgCluster, error) {
	pg := &pgCluster{data: filepath.Join(dir, "data"), dsn: "host=127.0.0.1 dbname=postgres sslmode=disable",
		command: func(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	owned := []string{dir, pwfile}
	if pki != nil {
		// The server insists on owning a private key nobody else can read.
		for _, f := range [][2]string{{pki.ServerCert, "server.pem"}, {pki.ServerKey, "server-key.pem"}, {pki.CA, "ca.pem"}} {
			b, err := os.ReadFile(f[0])
			dst := filepath.Join(dir, f[1])
			if err == nil {
				err = os.WriteFile(dst, b, 0o600)
			}
			if err != nil {
				return nil, err
			}
			owned = append(owned, dst)
		}
		pg.sslArgs = []string{"-c", "ssl=on", "-c", "ssl_cert_file=" + filepath.Join(dir, "server.pem"),
			"-c", "ssl_key_file=" + filepath.Join(dir, "server-key.pem"), "-c", "ssl_ca_file=" + filepath.Join(dir, "ca.pem")}
	}
	chown := func(string) error { return nil }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		chown = func(p string) error { return os.Chown(p, uid, gid) }
		for _, p := range owned {
			if err := chown(p); err != nil {
				return nil, err
			}
		}
		pg.command = func(bin string, args ...string) *exec.Cmd {
			c := exec.Command(bin, args...)
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			return c
		}
	}
	init := pg.command(initdb, "-D", pg.data, "-U", username, "--pwfile", pwfile, "-A", "scram-sha-256", "--no-sync", "-E", "UTF8")
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb failed: %v\n%s", err, out)
	}
	// Any loopback source may connect (initdb's own rules name
	// 127.0.0.1 alone): probers that leave from their own loopback
	// address (--source-address) stand for sites of their own.
	rules := "local all all scram-sha-256\nhost all all 127.0.0.0/8 scram-sha-256\n"
	if pki != nil {
		rules = "local all all scram-sha-256\nhostssl all all 127.0.0.0/8 scram-sha-256 clientcert=verify-full\n"
		pg.dsn = fmt.Sprintf("host=127.0.0.1 dbname=postgres sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s", pki.CA, pki.ClientCert, pki.ClientKey)
	}
	hba := filepath.Join(pg.data, "pg_hba.conf")
	err := os.WriteFile(hba, []byte(rules), 0o600)
	if err == nil {
		err = chown(hba)
	}
	if err != nil {
		return nil, fmt.Errorf("writing pg_hba.conf: %w", err)
	}
	return pg, nil
}

// awaitSession waits until a session opens: the port opens before
// recovery ends ("the database system is starting up").
func awaitSession(dsn, username, password string) error {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cc.User, cc.Password = username, password
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kafka starts an in-process Kafka-protocol broker on addr ("" = free)
// with topics seeded.
func Kafka(addr string, topics ...string) (*Server, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, topics...)}
	if addr != "" {
		p, err := strconv.Atoi(port(addr))
		if err != nil {
			return nil, fmt.Errorf("kafka address %q: %w", addr, err)
		}
		opts = append(opts, kfake.Ports(p))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, err
	}
	return &Server{Addr: c.ListenAddrs()[0], stop: c.Close}, nil
}

// Hang accepts connections and never answers: a peer that is up but
// stuck. It lets go of a connection once the client hangs up, so that a
// test counting sockets sees only the prober's.
func Hang() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			})
		}
	})
	stop := func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	return &Server{Addr: ln.Addr().String(), stop: stop}, nil
}

// DNS serves h on UDP and TCP at one fresh loopback port, as a resolver
// does (a truncated UDP answer is asked again over TCP).
func DNS(h dns.Handler) (*Server, error) {
	var pc net.PacketConn
	var ln net.Listener
	var err error
	// The port UDP got may be taken for TCP; try another.
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, err
	}
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = srv.ActivateAndServe() })
		<-started
	}
	return &Server{Addr: pc.LocalAddr().String(), stop: func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
		wg.Wait()
	}}, nil
}
