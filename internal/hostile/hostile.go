// Package hostile runs loopback peers that answer like broken or
// malicious servers: length bombs, oversized replies, header floods,
// giant headers, garbage frames and terminal escapes, one protocol each.
// Tests point probes (and `probe serve`) at them to show that no reply
// can crash, bloat, stall or fool the prober. Every peer listens on
// 127.0.0.1 only, and every flood is capped (Cap bytes per connection)
// so that a test stays bounded even against a prober that keeps reading.
package hostile

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"

	"github.com/allinx/hopprobe/internal/peers"
)

// Cap is the most a flood sends on one connection.
const Cap = 64 << 20

// Escapes is terminal control text a peer slips into its replies: colour,
// a window-title change, a bell and a cursor move.
const Escapes = "\x1b[31mRED\x1b[0m\x1b]0;pwned\x07\x1b[2J\x9b"

// Peer is one hostile server.
type Peer struct {
	Name string
	Addr string
	// Passwords counts password messages a PostgreSQL peer received.
	Passwords atomic.Int64
	// Elsewhere is, for a peer that sends the probe on (a sentinel, a
	// broker's metadata), the loopback address it names: a listener
	// the topology does not document, which counts in Redirected every
	// connection it is sent and closes it.
	Elsewhere  string
	Redirected atomic.Int64
	// Stalled counts connections a stalling peer holds mid-exchange.
	Stalled   atomic.Int64
	elsewhere net.Listener

	ln    net.Listener
	dns   *peers.Server
	grpc  *grpc.Server
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// Stop closes the listener and every open connection and waits.
func (p *Peer) Stop() {
	if p.ln != nil {
		p.ln.Close()
	}
	if p.elsewhere != nil {
		p.elsewhere.Close()
	}
	if p.dns != nil {
		p.dns.Stop()
	}
	if p.grpc != nil {
		p.grpc.Stop()
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// escapesReply is a Redis error with terminal escapes and 1 MiB of text.
var escapesReply = []byte("-ERR " + Escapes + strings.Repeat("E", 1<<20) + "\r\n")

// behaviours maps a peer's name to what it does with one connection.
var behaviours = map[string]func(p *Peer, c net.Conn){
	// go-redis makes a slice of the announced length: this one is out of range.
	"redis-length-bomb": answer("*2\r\n$9223372036854775807\r\n", hold),
	// An array count that would be a fatal out-of-memory, not a panic.
	"redis-array-bomb": answer("*10000000000\r\n", hold),
	// A sentinel whose answer to "where is the master" nests arrays
	// within arrays (go-redis's failover client parsed such replies on a
	// goroutine of its own, beyond any recover), then names a master at
	// an address nobody documented.
	"redis-sentinel-nested-master": func(_ *Peer, c net.Conn) {
		readSome(c)
		io.WriteString(c, strings.Repeat("*2\r\n", 4096)+":1\r\n")
		readSome(c)
		io.WriteString(c, "*2\r\n$9\r\n10.66.6.6\r\n$4\r\n6379\r\n")
		hold(c)
	},
	// A reply nested 100,000 arrays deep in 400 KB: go-redis reads a
	// nested reply by recursion.
	"redis-deep-nesting": answer(strings.Repeat("*1\r\n", 100000)+":1\r\n", hold),
	// 600,000 empty strings in 3.6 MB, under the budget: go-redis would
	// build an interface and a string header for each (30 bytes from 6).
	"redis-element-flood": answer("*600000\r\n"+strings.Repeat("$0\r\n\r\n", 600000), hold),
	// A sentinel that names as the master an address the topology does
	// not document (a loopback listener that counts connections).
	"redis-sentinel-elsewhere": func(p *Peer, c net.Conn) {
		host, port, _ := net.SplitHostPort(p.Elsewhere)
		for readSome(c) == nil {
			io.WriteString(c, fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(host), host, len(port), port))
		}
	},
	// A 1 GiB bulk string, of which Cap bytes are sent.
	"redis-huge-bulk": answer("$1073741824\r\n", floodWith('x')),
	// An error reply with terminal escapes and 1 MiB of text.
	"redis-escapes": func(_ *Peer, c net.Conn) {
		for sent := 0; sent < Cap && readSome(c) == nil; sent += len(escapesReply) {
			if _, err := c.Write(escapesReply); err != nil {
				return
			}
		}
	},
	// A backend message that claims 1 GiB.
	"postgres-huge-message": func(_ *Peer, c net.Conn) {
		readSome(c)
		c.Write([]byte{'R', 0x40, 0, 0, 0})
		flood(c, 0)
	},
	// A server that asks for the password in clear text and counts
	// whether it came.
	"postgres-cleartext": func(p *Peer, c net.Conn) {
		br := bufio.NewReader(c)
		if !readStartup(br, c) {
			return
		}
		c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			typ, err := br.ReadByte()
			if err != nil {
				return
			}
			var l [4]byte
			if _, err := io.ReadFull(br, l[:]); err != nil {
				return
			}
			if typ == 'p' {
				p.Passwords.Add(1)
			}
			n := int64(binary.BigEndian.Uint32(l[:])) - 4
			if _, err := io.CopyN(io.Discard, br, max(n, 0)); err != nil {
				return
			}
		}
	},
	// A server that offers SCRAM-SHA-256 and asks for a billion
	// iterations in its first challenge.
	"postgres-scram-work-bomb": func(_ *Peer, c net.Conn) {
		nonce, ok := pgSCRAMStart(c)
		if !ok {
			return
		}
		// AuthenticationSASLContinue (11) with the server-first message.
		first := []byte("r=" + nonce + "hostile,s=c2FsdHNhbHRzYWx0,i=1000000000")
		msg := binary.BigEndian.AppendUint32([]byte{'R'}, uint32(8+len(first)))
		msg = binary.BigEndian.AppendUint32(msg, 11)
		c.Write(append(msg, first...))
		hold(c)
	},
	// A server that starts SCRAM and then never answers the client's
	// first message: the probe waits inside authentication.
	"postgres-sasl-stall": func(p *Peer, c net.Conn) {
		if _, ok := pgSCRAMStart(c); ok {
			p.Stalled.Add(1)
			hold(c)
		}
	},
	// A broker that asks for a billion SCRAM iterations.
	"kafka-scram-work-bomb": kafkaSCRAMWorkBomb,
	// A broker that starts SCRAM and then says nothing.
	"kafka-sasl-stall": kafkaSASLStall,
	// Metadata of 300,000 brokers in 3.3 MB.
	"kafka-metadata-confetti": kafkaMetadataConfetti,
	// Metadata that puts every partition's leader elsewhere.
	"kafka-brokers-elsewhere": kafkaBrokersElsewhere,
	// A Kafka response that claims 2 GiB.
	"kafka-huge-response": func(_ *Peer, c net.Conn) {
		readSome(c)
		c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
		flood(c, 0)
	},
	// An HTTP/2 peer whose first frame claims 16 MiB, then garbage: the
	// gRPC (etcd) client must give up within its bounds.
	"etcd-garbage-frames": func(_ *Peer, c net.Conn) {
		// SETTINGS (empty) so the client thinks it speaks HTTP/2, then a
		// DATA frame header announcing the largest frame length.
		c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
		c.Write([]byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1})
		flood(c, 0xee)
	},
	// A WebSocket upgrade answered with an endless header.
	"websocket-header-flood": func(_ *Peer, c net.Conn) {
		readSome(c)
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
		floodHeaders(c)
	},
	// A correct upgrade, then a frame that claims 2^63-1 bytes.
	"websocket-garbage-frames": func(_ *Peer, c net.Conn) {
		acceptUpgrade(c, "")
		c.Write([]byte{0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		flood(c, 'w')
	},
	// An upgrade that turns on permessage-deflate although the client
	// never offered it, then one compressed frame that inflates to
	// 64 MiB of zeros (about 64 KiB on the wire): a client that inflates
	// it counts the compressed bytes against its read limit.
	"websocket-deflate-unoffered": func(_ *Peer, c net.Conn) {
		acceptUpgrade(c, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n")
		payload := deflateBomb()
		// FIN, RSV1 (compressed), text; a 64-bit length.
		hdr := []byte{0xc1, 127, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(hdr[2:], uint64(len(payload)))
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(hdr)
		c.Write(payload)
		hold(c)
	},
	// A 9 MB Server header.
	"http-giant-header": func(_ *Peer, c net.Conn) {
		readSome(c)
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nServer: "+Escapes)
		w := bufio.NewWriter(c)
		for range 9 << 10 {
			if _, err := w.WriteString(strings.Repeat("S", 1<<10)); err != nil {
				return
			}
		}
		w.WriteString("\r\nContent-Length: 0\r\n\r\n")
		w.Flush()
		hold(c)
	},
	// Informational (1xx) responses without end, never the final one.
	"http-informational-flood": func(_ *Peer, c net.Conn) {
		readSome(c)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for sent := 0; sent < Cap; sent += 64 {
			if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"); err != nil {
				return
			}
		}
		hold(c)
	},
	// A healthy-looking answer with an endless body.
	// A JSON answer gzip-compressed although the probe offered no
	// encoding: 80 KiB that inflate to 64 MiB.
	"http-gzip-unoffered": func(_ *Peer, c net.Conn) {
		readSome(c)
		bomb := gzipBomb()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n", len(bomb))
		c.Write(bomb)
		hold(c)
	},
	"http-endless-body": answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", floodWith('b')),
	// A small 502 whose Server and Via carry terminal escapes, and an
	// endless body.
	"http-escapes": answer("HTTP/1.1 502 Bad Gateway\r\nServer: nginx "+Escapes+"\r\nVia: 1.1 "+Escapes+"\r\n\r\n", floodWith('b')),
	// A TLS server whose first handshake message claims 16 MiB (a
	// certificate chain a client would buffer whole), then sends full
	// handshake records until Cap.
	"tls-giant-handshake-message": func(_ *Peer, c net.Conn) {
		readSome(c)
		record := func(body []byte) []byte {
			return append([]byte{22, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
		}
		first := append([]byte{11, 0xff, 0xff, 0xff}, make([]byte, 16<<10-4)...)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(record(first)); err != nil {
			return
		}
		next := record(make([]byte, 16<<10))
		for sent := 0; sent < Cap; sent += len(next) {
			if _, err := c.Write(next); err != nil {
				return
			}
		}
		hold(c)
	},
	// Terminal escapes where a TLS record should be.
	"tls-escapes": answer(strings.Repeat(Escapes, 64), floodWith(0x9b)),
}

// DNS behaviours answer on UDP and TCP at one address.
var dnsBehaviours = map[string]dns.HandlerFunc{
	// Every answer truncated, with names full of escapes on TCP.
	"dns-escapes": overTCP(func(m, q *dns.Msg) {
		// A CNAME chain through names full of escapes that loops back.
		x, y := "x\x1b[31m.example.", "y\x1b]0;pwned\x07.example."
		for _, hop := range [][2]string{{q.Question[0].Name, x}, {x, y}, {y, x}} {
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: hop[0], Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: hop[1]})
		}
	}),
	// Garbage bytes instead of a DNS message.
	"dns-garbage": func(w dns.ResponseWriter, q *dns.Msg) {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		binary.BigEndian.PutUint16(b, q.Id)
		w.Write(b)
	},
}

// DNSHandler is a hostile DNS behaviour, for a test that serves it under
// some names beside healthy ones.
func DNSHandler(name string) dns.HandlerFunc { return dnsBehaviours[name] }

// Names lists every hostile peer, TCP and DNS.
func Names() []string {
	var out []string
	for n := range behaviours {
		out = append(out, n)
	}
	for n := range dnsBehaviours {
		out = append(out, n)
	}
	for n := range grpcBehaviours {
		out = append(out, n)
	}
	return out
}

// Start runs the named hostile peer on a fresh loopback port.
func Start(name string) (*Peer, error) {
	if h, ok := dnsBehaviours[name]; ok {
		return startDNS(name, h)
	}
	if h, ok := grpcBehaviours[name]; ok {
		return startGRPC(name, h)
	}
	b, ok := behaviours[name]
	if !ok {
		return nil, errors.New("no hostile peer named " + name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Peer{Name: name, Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	if strings.HasSuffix(name, "-elsewhere") {
		if err := p.listenElsewhere(); err != nil {
			ln.Close()
			return nil, err
		}
	}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			p.wg.Go(func() {
				defer func() {
					c.Close()
					p.mu.Lock()
					delete(p.conns, c)
					p.mu.Unlock()
				}()
				b(p, c)
			})
		}
	})
	return p, nil
}

// listenElsewhere starts the undocumented listener a redirecting peer
// names.
func (p *Peer) listenElsewhere() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p.elsewhere, p.Elsewhere = ln, ln.Addr().String()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.Redirected.Add(1)
			c.Close()
		}
	})
	return nil
}

// deflateBomb is 64 MiB of zeros as one raw-deflate message of about 80
// KiB. Bombs are made on first use, at the fastest level: the best takes
// ten seconds under the race detector, for 64 KiB, and every test binary
// that links this package would pay it at start-up.
var deflateBomb = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	writeZeros(zw, 64<<20)
	zw.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
})

// gzipBomb is 64 MiB of zeros, gzip-compressed to about 80 KiB.
var gzipBomb = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	writeZeros(w, 64<<20)
	w.Close()
	return b.Bytes()
})

// writeZeros writes n zero bytes to w, a MiB at a time.
func writeZeros(w io.Writer, n int) {
	zeros := make([]byte, 1<<20)
	for ; n > 0; n -= len(zeros) {
		w.Write(zeros[:min(n, len(zeros))])
	}
}

// overTCP is a DNS peer that truncates every answer over UDP, so that
// what fill puts in the reply to q goes over TCP, where it may be 64 KiB.
func overTCP(fill func(m, q *dns.Msg)) dns.HandlerFunc {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
		} else {
			fill(m, q)
		}
		w.WriteMsg(m)
	}
}

func startDNS(name string, h dns.HandlerFunc) (*Peer, error) {
	srv, err := peers.DNS(h)
	if err != nil {
		return nil, err
	}
	return &Peer{Name: name, Addr: srv.Addr, dns: srv}, nil
}

// answer reads the client's first bytes, sends reply, then does then.
func answer(reply string, then func(net.Conn)) func(*Peer, net.Conn) {
	return func(_ *Peer, c net.Conn) {
		readSome(c)
		io.WriteString(c, reply)
		then(c)
	}
}

// floodWith is flood of b, as an answer's tail.
func floodWith(b byte) func(net.Conn) { return func(c net.Conn) { flood(c, b) } }

// readSome waits for the client's first bytes (a request, a startup
// message), so that the reply is not mistaken for a server greeting.
func readSome(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, 4096)
	_, err := c.Read(b)
	return err
}

// pgSCRAMStart reads the startup message, asks for SCRAM-SHA-256 and
// reads the client-first message, returning its nonce.
func pgSCRAMStart(c net.Conn) (string, bool) {
	br := bufio.NewReader(c)
	if !readStartup(br, c) {
		return "", false
	}
	// AuthenticationSASL (10): SCRAM-SHA-256.
	mech := append([]byte("SCRAM-SHA-256\x00"), 0)
	msg := binary.BigEndian.AppendUint32([]byte{'R'}, uint32(8+len(mech)))
	msg = binary.BigEndian.AppendUint32(msg, 10)
	c.Write(append(msg, mech...))
	// SASLInitialResponse: 'p', length, mechanism, length, client-first.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if typ, err := br.ReadByte(); err != nil || typ != 'p' {
		return "", false
	}
	var l [4]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return "", false
	}
	body := make([]byte, max(int(binary.BigEndian.Uint32(l[:]))-4, 0)%(1<<16))
	if _, err := io.ReadFull(br, body); err != nil {
		return "", false
	}
	nonce := ""
	if i := bytes.Index(body, []byte("r=")); i >= 0 {
		nonce = string(body[i+2:])
	}
	return nonce, true
}

// readStartup reads a PostgreSQL startup message, refusing TLS first if
// the client asks for it.
func readStartup(br *bufio.Reader, c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		var l [4]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return false
		}
		n := int(binary.BigEndian.Uint32(l[:])) - 4
		if n < 4 || n > 10000 {
			return false
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return false
		}
		if binary.BigEndian.Uint32(body) == 80877103 { // SSLRequest
			c.Write([]byte{'N'})
			continue
		}
		return true
	}
}

// acceptUpgrade reads a WebSocket upgrade request and answers it
// correctly, with the extra header lines given.
func acceptUpgrade(c net.Conn, extra string) {
	accept := sha1.Sum([]byte(upgradeKey(c) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		base64.StdEncoding.EncodeToString(accept[:])+"\r\n"+extra+"\r\n")
}

// upgradeKey reads an HTTP upgrade request and returns its key.
func upgradeKey(c net.Conn) string {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	br := bufio.NewReader(io.LimitReader(c, 64<<10))
	key := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return key
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
			key = strings.TrimSpace(v)
		}
		if line == "\r\n" {
			return key
		}
	}
}

// flood sends Cap bytes of b, or until the client hangs up.
func flood(c net.Conn, b byte) {
	chunk := []byte(strings.Repeat(string([]byte{b}), 32<<10))
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for sent := 0; sent < Cap; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
	hold(c)
}

// floodHeaders sends header lines until Cap bytes or a hang-up.
func floodHeaders(c net.Conn) {
	line := []byte("X-Flood: " + strings.Repeat("h", 1000) + "\r\n")
	w := bufio.NewWriterSize(c, 32<<10)
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for sent := 0; sent < Cap; sent += len(line) {
		if _, err := w.Write(line); err != nil {
			return
		}
	}
	w.Flush()
	hold(c)
}

// hold keeps the connection open until the client closes it (or 30 s):
// a hostile peer does not end the exchange for the prober.
func hold(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}
