package hostile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaSCRAMWorkBomb is a Kafka broker that offers SCRAM-SHA-256 and,
// to the client's first message, answers with a salt and one billion
// iterations: a client that computes them spends minutes of CPU on what
// the peer chose (a real broker allows 4,096 to 16,384).
var kafkaSCRAMWorkBomb = kafkaBroker(func(req kmsg.Request) any {
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return kafkaVersions(18, 3, 17, 1, 36, 2, 3, 9)
	case *kmsg.SASLHandshakeRequest:
		return kafkaMechanism("SCRAM-SHA-256")
	case *kmsg.SASLAuthenticateRequest:
		nonce := ""
		for _, kv := range strings.Split(string(r.SASLAuthBytes), ",") {
			if v, ok := strings.CutPrefix(kv, "r="); ok {
				nonce = v
			}
		}
		a := kmsg.NewPtrSASLAuthenticateResponse()
		a.SASLAuthBytes = []byte("r=" + nonce + "hostile,s=c2FsdHNhbHRzYWx0,i=1000000000")
		return a
	}
	return nil
})

// kafkaSASLStall starts SCRAM and never answers the client's first
// message: the probe waits inside authentication.
func kafkaSASLStall(p *Peer, c net.Conn) {
	kafkaBroker(func(req kmsg.Request) any {
		switch req.(type) {
		case *kmsg.ApiVersionsRequest:
			return kafkaVersions(18, 3, 17, 1, 36, 2, 3, 12)
		case *kmsg.SASLHandshakeRequest:
			return kafkaMechanism("SCRAM-SHA-256")
		case *kmsg.SASLAuthenticateRequest:
			p.Stalled.Add(1)
			return stall{}
		}
		return nil
	})(p, c)
}

// stall, as an answer, holds the connection without a reply.
type stall struct{}

// kafkaMetadataConfetti answers metadata with 300,000 brokers of empty
// names in 3.3 MB, under the byte budget: decoded, each is a struct of
// about 80 bytes from 11 on the wire. The body is written by hand (v12),
// as building it with kmsg would cost the test what it guards against.
var kafkaMetadataConfetti = kafkaBroker(func(req kmsg.Request) any {
	switch req.(type) {
	case *kmsg.ApiVersionsRequest:
		return kafkaVersions(18, 3, 3, 12)
	case *kmsg.MetadataRequest:
		if req.GetVersion() != 12 {
			return nil
		}
		return metadataConfetti
	}
	return nil
})

// kafkaBrokersElsewhere is a SASL PLAIN broker whose metadata puts every
// partition's leader at its Elsewhere address, which the topology does
// not name: a client that follows it would authenticate there.
func kafkaBrokersElsewhere(p *Peer, c net.Conn) {
	host, port, _ := net.SplitHostPort(p.Elsewhere)
	portN, _ := strconv.Atoi(port)
	kafkaBroker(func(req kmsg.Request) any {
		switch r := req.(type) {
		case *kmsg.ApiVersionsRequest:
			return kafkaVersions(18, 3, 17, 1, 36, 2, 3, 12)
		case *kmsg.SASLHandshakeRequest:
			return kafkaMechanism("PLAIN")
		case *kmsg.SASLAuthenticateRequest:
			return kmsg.NewPtrSASLAuthenticateResponse()
		case *kmsg.MetadataRequest:
			m := kmsg.NewPtrMetadataResponse()
			b := kmsg.NewMetadataResponseBroker()
			b.NodeID, b.Host, b.Port = 2, host, int32(portN)
			m.Brokers = append(m.Brokers, b)
			m.ControllerID = 2
			for _, rt := range r.Topics {
				t := kmsg.NewMetadataResponseTopic()
				t.Topic = rt.Topic
				pt := kmsg.NewMetadataResponseTopicPartition()
				pt.Leader, pt.Replicas, pt.ISR = 2, []int32{2}, []int32{2}
				t.Partitions = append(t.Partitions, pt)
				m.Topics = append(m.Topics, t)
			}
			return m
		}
		return nil
	})(p, c)
}

// metadataConfetti is the body of a v12 Metadata response naming
// 300,000 brokers.
var metadataConfetti = func() []byte {
	const n = 300000
	body := binary.BigEndian.AppendUint32(nil, 0) // throttle
	body = binary.AppendUvarint(body, n+1)
	broker := []byte{0, 0, 0, 1, 1, 0, 0, 0x23, 0x84, 0, 0} // id 1, "", 9092, no rack, no tags
	for range n {
		body = append(body, broker...)
	}
	body = append(body, 0)          // no cluster id
	body = append(body, 0, 0, 0, 1) // controller
	return append(body, 1, 0)       // no topics, no tags
}()

// kafkaMechanism is a SASL handshake answer offering mechanism.
func kafkaMechanism(mechanism string) *kmsg.SASLHandshakeResponse {
	h := kmsg.NewPtrSASLHandshakeResponse()
	h.SupportedMechanisms = []string{mechanism}
	return h
}

// kafkaVersions is an ApiVersions answer: key, max version pairs.
func kafkaVersions(pairs ...int16) *kmsg.ApiVersionsResponse {
	a := kmsg.NewPtrApiVersionsResponse()
	for i := 0; i+1 < len(pairs); i += 2 {
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = pairs[i], 0, pairs[i+1]
		a.ApiKeys = append(a.ApiKeys, ak)
	}
	return a
}

// kafkaBroker answers each request with what respond returns: a
// response, the raw body of one ([]byte), or nil to hang up.
func kafkaBroker(respond func(kmsg.Request) any) func(*Peer, net.Conn) {
	return func(_ *Peer, c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		for {
			req, corr, err := readKafkaRequest(br)
			if err != nil {
				return
			}
			out := binary.BigEndian.AppendUint32(nil, uint32(corr))
			// ApiVersions answers with a v0 header whatever its version.
			if req.IsFlexible() && kmsg.Key(req.Key()) != kmsg.ApiVersions {
				out = append(out, 0) // no tagged fields
			}
			switch r := respond(req).(type) {
			case kmsg.Response:
				r.SetVersion(req.GetVersion())
				out = r.AppendTo(out)
			case []byte:
				out = append(out, r...)
			case stall:
				hold(c)
				return
			default:
				return
			}
			frame := binary.BigEndian.AppendUint32(nil, uint32(len(out)))
			if _, err := c.Write(append(frame, out...)); err != nil {
				return
			}
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
