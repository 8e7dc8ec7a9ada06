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
	pending []byte
	ready   bool
	err     error
}

// maxAuthMessage bounds one message of the authentication phase.
const maxAuthMessage = 64 << 10

func guardPGAuth(_ context.Context, _ *pgconn.Config, c net.Conn) (net.Conn, error) {
	return &pgAuthGuard{Conn: c}, nil
}

func (g *pgAuthGuard) Read(p []byte) (int, error) {
	if g.ready && len(g.pending) == 0 {
		return g.Conn.Read(p)
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

// next reads one whole message into pending and checks it.
func (g *pgAuthGuard) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(g.Conn, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > maxAuthMessage {
		return fmt.Errorf("the server sent a %d-byte message while authenticating (at most %d)", n+4, maxAuthMessage)
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
