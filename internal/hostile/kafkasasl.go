package hostile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaSCRAMWorkBomb is a Kafka broker that offers SCRAM-SHA-256 and,
// to the client's first message, answers with a salt and one billion
// iterations: a client that computes them spends minutes of CPU on what
// the peer chose (a real broker allows 4,096 to 16,384).
func kafkaSCRAMWorkBomb(p *Peer, c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for {
		req, corr, err := readKafkaRequest(br)
		if err != nil {
			return
		}
		key, version := req.Key(), req.GetVersion()
		var resp kmsg.Response
		switch r := req.(type) {
		case *kmsg.ApiVersionsRequest:
			a := kmsg.NewPtrApiVersionsResponse()
			for _, k := range []struct{ key, max int16 }{{18, 3}, {17, 1}, {36, 2}, {3, 9}} {
				ak := kmsg.NewApiVersionsResponseApiKey()
				ak.ApiKey, ak.MinVersion, ak.MaxVersion = k.key, 0, k.max
				a.ApiKeys = append(a.ApiKeys, ak)
			}
			resp = a
		case *kmsg.SASLHandshakeRequest:
			h := kmsg.NewPtrSASLHandshakeResponse()
			h.SupportedMechanisms = []string{"SCRAM-SHA-256"}
			resp = h
		case *kmsg.SASLAuthenticateRequest:
			nonce := ""
			for _, kv := range strings.Split(string(r.SASLAuthBytes), ",") {
				if v, ok := strings.CutPrefix(kv, "r="); ok {
					nonce = v
				}
			}
			a := kmsg.NewPtrSASLAuthenticateResponse()
			a.SASLAuthBytes = []byte("r=" + nonce + "hostile,s=c2FsdHNhbHRzYWx0,i=1000000000")
			resp = a
		default:
			return
		}
		resp.SetVersion(version)
		out := binary.BigEndian.AppendUint32(nil, uint32(corr))
		// ApiVersions answers with a v0 header whatever its version.
		if req.IsFlexible() && key != 18 {
			out = append(out, 0) // no tagged fields
		}
		out = resp.AppendTo(out)
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(out)))
		if _, err := c.Write(append(frame, out...)); err != nil {
			return
		}
	}
}

// readKafkaRequest reads and decodes one request frame, and returns it
// with its correlation id.
func readKafkaRequest(br *bufio.Reader) (kmsg.Request, int32, error) {
	var l [4]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return nil, 0, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n < 10 || n > 1<<20 {
		return nil, 0, fmt.Errorf("a request of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, 0, err
	}
	req := kmsg.RequestForKey(int16(binary.BigEndian.Uint16(b)))
	if req == nil {
		return nil, 0, fmt.Errorf("an unknown request key %d", binary.BigEndian.Uint16(b))
	}
	req.SetVersion(int16(binary.BigEndian.Uint16(b[2:])))
	corr := int32(binary.BigEndian.Uint32(b[4:]))
	// The client id: a nullable string.
	rest := b[8:]
	if idLen := int(int16(binary.BigEndian.Uint16(rest))); idLen > 0 && idLen <= len(rest)-2 {
		rest = rest[2+idLen:]
	} else {
		rest = rest[2:]
	}
	if req.IsFlexible() {
		// Tagged fields of the header: the client sends none.
		_, m := binary.Uvarint(rest)
		rest = rest[m:]
	}
	return req, corr, req.ReadFrom(rest)
}
