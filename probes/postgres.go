package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// postgresProber connects with the configured sslmode, authenticates and
// runs a read-only query inside a read-only transaction; it never writes.
type postgresProber struct{}

func (postgresProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	st := t.Store
	host, port, err := net.SplitHostPort(st.Address)
	if err != nil {
		return fmt.Errorf("address %q is not host:port: %w", st.Address, err)
	}
	pw, err := storePassword(st)
	if err != nil {
		return err
	}
	sslmode, query, expect, role := "prefer", "SELECT 1", "1", ""
	if o := st.Postgres; o != nil {
		if o.SSLMode != "" {
			sslmode = o.SSLMode
		}
		if o.Query != "" {
			query, expect = o.Query, o.Expect
		}
		role = o.Role
	}
	db := st.Database
	if db == "" {
		db = "postgres"
	}
	// The password never enters the connection string, so it cannot
	// appear in a parse error. Certificates go through pgx's own
	// sslrootcert/sslcert/sslkey so that each sslmode keeps its meaning.
	dsn := fmt.Sprintf("host=%s port=%s dbname=%s sslmode=%s", quote(host), port, quote(db), sslmode)
	if c := st.TLS; c != nil {
		for k, v := range map[string]string{"sslrootcert": c.CAFile, "sslcert": c.CertFile, "sslkey": c.KeyFile} {
			if v != "" {
				dsn += " " + k + "=" + quote(v)
			}
		}
	}
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("postgres settings for %s: %w", st.Name, err)
	}
	cc.User, cc.Password = st.Username, pw
	// The whole of what is left of the hop's timeout, to the nanosecond:
	// the DSN's connect_timeout counts whole seconds.
	cc.ConnectTimeout = remaining(ctx)
	// A server (or whatever answers on its address) that asks for the
	// password in clear text or as MD5 gets nothing unless the topology
	// allows it: with a password set, only SCRAM is accepted by default.
	cc.RequireAuth = requireAuth(st.Postgres, pw != "")
	sc := scopeOf(ctx)
	cc.DialFunc = sc.dial
	// The SCRAM work factor is the server's to choose; see pgAuthGuard.
	cc.AfterNetConnect = guardPGAuth(sc.limit)
	// pgx accepts messages of up to 1 GiB; none of the probe's needs more
	// than its budget.
	cc.MaxProtocolMessageBodyLen = int(sc.limit)
	if c := st.TLS; c != nil && c.ServerName != "" {
		for _, tc := range append([]*tls.Config{cc.TLSConfig}, fallbackTLS(cc)...) {
			if tc != nil {
				tc.ServerName = c.ServerName
			}
		}
	}
	start := time.Now()
	conn, err := pgx.ConnectConfig(ctx, cc)
	since(rep, "connect", start)
	if err != nil {
		pgLimit(sc, err)
		return fmt.Errorf("cannot open a session on %s (connect, TLS, authenticate): %w", st.Name, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	start = time.Now()
	var got string
	var inRecovery bool
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var v any
		if err := tx.QueryRow(ctx, query).Scan(&v); err != nil {
			return err
		}
		got = fmt.Sprint(v)
		return tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
	})
	since(rep, "query", start)
	if err != nil {
		pgLimit(sc, err)
		return connected(fmt.Errorf("read-only query on %s failed: %w", st.Name, err))
	}
	actual := "primary"
	if inRecovery {
		actual = "replica"
	}
	rep.Detail("role", actual)
	rep.Detail("in_recovery", strconv.FormatBool(inRecovery))
	if v := conn.PgConn().ParameterStatus("server_version"); v != "" {
		rep.Detail("server_version", v)
	}
	if expect != "" && got != expect {
		return connected(fmt.Errorf("query on %s returned %q, want %q", st.Name, got, expect))
	}
	if role != "" && role != actual {
		return connected(fmt.Errorf("%s is a %s, want %s", st.Name, actual, role))
	}
	return nil
}

// quote writes a libpq keyword value.
func quote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func fallbackTLS(cc *pgx.ConnConfig) []*tls.Config {
	var out []*tls.Config
	for _, f := range cc.Fallbacks {
		out = append(out, f.TLSConfig)
	}
	return out
}

// requireAuth is pgx's (libpq's) require_auth for a store: what the
// topology lists, else SCRAM when there is a password to protect.
func requireAuth(o *config.PostgresOpts, hasPassword bool) string {
	if o != nil && len(o.RequireAuth) > 0 {
		return strings.Join(o.RequireAuth, ",")
	}
	if hasPassword {
		return "scram-sha-256"
	}
	return ""
}

// pgLimit names the budget when pgx refused a message for its size.
func pgLimit(sc *scope, err error) {
	var big *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &big) {
		sc.tooLarge("a %d-byte PostgreSQL message announced, over the %s budget (max_response_bytes)", big.ActualBodyLen, byteSize(sc.limit))
	}
}

// postgresKind is the postgres block of a store: checked where the
// probe that reads it lives.
var postgresKind = config.StoreKind{
	HasBlock: func(s *config.Store) bool { return s.Postgres != nil },
	Check: func(s *config.Store, c *config.Checker) {
		o := s.Postgres
		if o.SSLMode != "" && !config.OneOf(o.SSLMode, "disable", "allow", "prefer", "require", "verify-ca", "verify-full") {
			c.Errorf([]any{"postgres", "sslmode"}, "sslmode %q is not one of disable, require, verify-ca, verify-full", o.SSLMode)
		}
		if o.Role != "" && o.Role != "primary" && o.Role != "replica" {
			c.Errorf([]any{"postgres", "role"}, "role %q must be primary or replica", o.Role)
		}
		for j, m := range o.RequireAuth {
			if !config.OneOf(m, "scram-sha-256", "md5", "password", "none") {
				c.Errorf([]any{"postgres", "require_auth", j}, "require_auth method %q must be scram-sha-256, md5, password or none", m)
			}
		}
	},
}
