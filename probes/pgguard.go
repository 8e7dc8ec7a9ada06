package probes

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgAuthGuard reads the server's messages whole until the session is
// ready, so that a SCRAM challenge (AuthenticationSASLContinue) is seen
// before pgx computes its proof: a challenge that asks for more than
// MaxSCRAMIterations ends the connection instead (pgx has no hook for
// it, and the hashing cannot be cancelled). After ReadyForQuery it only
// passes bytes on.
type pgAuthGuard struct {
	net.Conn
	limit   int64 // the probe's byte budget
	pending []byte
	stream  int // bytes of a long non-authentication message still to pass on
	ready   bool
	err     error
}

// maxAuthMessage bounds one message of the authentication phase; a
// longer notice or error is passed on as it comes, anything else longer
// is refused.
const maxAuthMessage = 64 << 10

func guardPGAuth(limit int64) func(context.Context, *pgconn.Config, net.Conn) (net.Conn, error) {
	return func(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
		return &pgAuthGuard{Conn: c, limit: limit}, nil
	}
}

func (g *pgAuthGuard) Read(p []byte) (int, error) {
	if len(g.pending) == 0 && (g.ready || g.stream > 0) {
		if g.stream > 0 && len(p) > g.stream {
			p = p[:g.stream]
		}
		n, err := g.Conn.Read(p)
		g.stream = max(g.stream-n, 0)
		return n, err
	}
	if len(g.pending) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if g.err = g.next(); g.err != nil {
			return 0, g.err
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// next reads one message header and, for a short message, its body into
// pending, and checks it.
func (g *pgAuthGuard) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(g.Conn, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	switch {
	case n < 0:
		return fmt.Errorf("the server sent a message of negative length while authenticating")
	case int64(n) > g.limit:
		return fmt.Errorf("the server announced a %d-byte message, more than the probe may read (max_response_bytes)", n+4)
	case n > maxAuthMessage && hdr[0] == 'R':
		return fmt.Errorf("the server sent a %d-byte authentication request (at most %d)", n+4, maxAuthMessage)
	case n > maxAuthMessage && hdr[0] != 'N' && hdr[0] != 'E':
		// pgx builds a list from some of these (a NegotiateProtocolVersion
		// names options: a string per byte); a notice or an error decodes
		// into fixed fields, so only those may be long.
		return fmt.Errorf("the server sent a %d-byte %q message before the session was ready (at most %d)", n+4, hdr[0], maxAuthMessage)
	case n > maxAuthMessage:
		g.pending, g.stream = hdr[:], n
		return nil
	}
	msg := make([]byte, 5+n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(g.Conn, msg[5:]); err != nil {
		return err
	}
	switch hdr[0] {
	case 'R':
		// AuthenticationSASLContinue carries the server-first message.
		if n >= 4 && binary.BigEndian.Uint32(msg[5:]) == 11 {
			if err := scramWork(msg[9:]); err != nil {
				return err
			}
		}
	case 'Z':
		g.ready = true
	}
	g.pending = msg
	return nil
}
