package hostile

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Peers whose replies are valid and small but become much more, or nest
// deep, once a client builds them.
func init() {
	// A response head of 12,000 empty headers in 60 KiB, under the
	// 64 KiB header limit: each is a map entry and a string once read.
	behaviours["http-header-confetti"] = answer("HTTP/1.1 503 Service Unavailable\r\n"+strings.Repeat("X: \r\n", 12000)+"Content-Length: 0\r\n\r\n", hold)
	// A JSON body of 1 MiB of open brackets.
	body := strings.Repeat("[", 1<<20)
	behaviours["http-json-nesting"] = answer(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body), hold)
	// A NegotiateProtocolVersion naming 1,000,000 empty options in 1 MB,
	// before authentication: pgx would build a string for each.
	behaviours["postgres-option-confetti"] = func(_ *Peer, c net.Conn) {
		if !readStartup(bufio.NewReader(c), c) {
			return
		}
		c.Write(optionConfetti)
		hold(c)
	}
	// A certificate chain of 600 copies of one certificate (240 KB, under
	// crypto/tls's 256 KiB certificate message): each is parsed.
	cert := selfSigned()
	for range 599 {
		cert.Certificate = append(cert.Certificate, cert.Certificate[0])
	}
	behaviours["tls-many-certificates"] = func(_ *Peer, c net.Conn) {
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		s.SetDeadline(time.Now().Add(10 * time.Second))
		s.Handshake()
		hold(c)
	}

	// An answer truncated over UDP, and over TCP 4,000 address records
	// of another name (64 KiB): each is a struct once unpacked.
	dnsBehaviours["dns-record-flood"] = overTCP(func(m, _ *dns.Msg) {
		m.Compress = true
		for i := range 4000 {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "elsewhere.example.", Rrtype: dns.TypeA, Class: dns.ClassINET},
				A: net.IPv4(127, 0, byte(i>>8), byte(i))})
		}
	})
	// A CNAME chain of 500 aliases in one answer.
	dnsBehaviours["dns-cname-chain"] = overTCP(func(m, q *dns.Msg) {
		m.Compress = true
		from := q.Question[0].Name
		for i := range 500 {
			to := fmt.Sprintf("a%d.example.", i)
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: from, Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: to})
			from = to
		}
	})
}

// optionConfetti is a NegotiateProtocolVersion of 1,000,000 empty names.
var optionConfetti = func() []byte {
	const n = 1000000
	msg := []byte{'v', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(4+8+n))
	msg = binary.BigEndian.AppendUint32(msg, 0)
	msg = binary.BigEndian.AppendUint32(msg, n)
	return append(msg, make([]byte, n)...)
}()

// selfSigned is a throw-away certificate for a hostile TLS peer.
func selfSigned() tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"hostile.example.test"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
