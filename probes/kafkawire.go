package probes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	franzsasl "github.com/twmb/franz-go/pkg/sasl"

	"github.com/allinx/hopprobe/hop"
)

// kafkaWire speaks Kafka's request/response protocol on one connection,
// on the probe's own goroutine: franz-go's kmsg encodes the requests and
// decodes the responses, but no client of franz-go's reads the socket.
// kgo's client parsed every response on a connection goroutine of its
// own, beyond the recover in Run, and kept a pool of connections a probe
// does not need; a probe asks one broker three or four questions.
type kafkaWire struct {
	conn     net.Conn
	corr     int32
	format   *kmsg.RequestFormatter
	versions map[kmsg.Key]int16 // the broker's highest version per API key
}

// Metadata v4 is the first to carry AllowAutoTopicCreation; asked with
// an older version, a broker creates a missing topic.
const minSafeMetadata = 4

func newKafkaWire(conn net.Conn) *kafkaWire {
	return &kafkaWire{conn: conn, format: kmsg.NewRequestFormatter(kmsg.FormatterClientID("hopprobe"))}
}

// What one response may take, before kmsg builds it: decoding makes
// about seven times a response's size in structs (a broker, a topic or a
// partition entry is 11 to 40 bytes on the wire and 80 to 200 bytes
// built), so the bound is on the frame. A metadata answer for the topics
// a probe names needs a few KiB per topic (1,000 partitions of three
// replicas: 42 KiB); the others need less than one.
const (
	maxKafkaReply         = 64 << 10
	maxKafkaMetadata      = 256 << 10
	maxKafkaMetadataTopic = 128 << 10
)

// roundTrip sends req and decodes its response, refusing one larger than
// limit before reading it (kafkaFrames has already held it to the
// probe's byte budget).
func (w *kafkaWire) roundTrip(ctx context.Context, req kmsg.Request, limit int64) (kmsg.Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = w.conn.SetDeadline(dl)
	}
	w.corr++
	if _, err := w.conn.Write(w.format.AppendRequest(nil, req, w.corr)); err != nil {
		return nil, err
	}
	var head [8]byte
	if _, err := io.ReadFull(w.conn, head[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if size < 4 {
		return nil, fmt.Errorf("the broker answered %s with a %d-byte frame, too short to hold a response", kmsg.NameForKey(req.Key()), size)
	}
	if corr := int32(binary.BigEndian.Uint32(head[4:])); corr != w.corr {
		return nil, fmt.Errorf("the broker answered request %d with a frame for request %d", w.corr, corr)
	}
	if int64(size) > limit {
		return nil, scopeOf(ctx).tooLarge("a %d-byte %s response, more than the %s a probe reads of it", size, kmsg.NameForKey(req.Key()), byteSize(limit))
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(w.conn, body); err != nil {
		return nil, err
	}
	// Flexible responses carry tagged header fields, except ApiVersions'
	// (its header stays v0 so that any client can read it).
	if req.IsFlexible() && kmsg.Key(req.Key()) != kmsg.ApiVersions {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("the broker's %s response does not decode: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// skipTags passes a tagged-field section: a count, then per field a tag
// and a length-prefixed value.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errMalformedTags
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errMalformedTags
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, errMalformedTags
		}
		b = b[k+int(size):]
	}
	return b, nil
}

var errMalformedTags = errors.New("the broker sent a malformed tagged-field section")

// negotiate asks for the broker's API versions (v0, which every broker
// answers).
func (w *kafkaWire) negotiate(ctx context.Context) error {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	r, err := w.roundTrip(ctx, req, maxKafkaReply)
	if err != nil {
		return fmt.Errorf("ApiVersions: %w", err)
	}
	resp := r.(*kmsg.ApiVersionsResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("ApiVersions: %w", err)
	}
	w.versions = make(map[kmsg.Key]int16, len(resp.ApiKeys))
	for _, k := range resp.ApiKeys {
		w.versions[kmsg.Key(k.ApiKey)] = k.MaxVersion
	}
	return nil
}

// version is the highest version of key both sides speak, or -1.
func (w *kafkaWire) version(key kmsg.Key, ours int16) int16 {
	theirs, ok := w.versions[key]
	if !ok {
		return -1
	}
	return min(theirs, ours)
}

// authenticate runs SASL (handshake v1, then SaslAuthenticate rounds)
// with mech, whose SCRAM work is capped (scramcap.go).
func (w *kafkaWire) authenticate(ctx context.Context, mech franzsasl.Mechanism, addr string) error {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	if hs.Version = w.version(kmsg.SASLHandshake, 1); hs.Version < 1 {
		return errors.New("the broker offers no SASL handshake v1 (Kafka before 1.0), which the probe needs to authenticate")
	}
	hs.Mechanism = mech.Name()
	r, err := w.roundTrip(ctx, hs, maxKafkaReply)
	if err != nil {
		return fmt.Errorf("SASL handshake: %w", err)
	}
	if err := kerr.ErrorForCode(r.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return fmt.Errorf("SASL handshake for %s: %w", mech.Name(), err)
	}
	session, out, err := mech.Authenticate(ctx, addr)
	if err != nil {
		return err
	}
	av := w.version(kmsg.SASLAuthenticate, kmsg.NewPtrSASLAuthenticateRequest().MaxVersion())
	// A mechanism needs a handful of rounds (SCRAM: two); a peer that
	// keeps challenging is cut off.
	for round, done := 0, false; !done || len(out) > 0; round++ {
		if round == 8 {
			return errors.New("the broker kept the SASL exchange going past 8 rounds")
		}
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = av, out
		r, err := w.roundTrip(ctx, req, maxKafkaReply)
		if err != nil {
			return fmt.Errorf("SASL authenticate: %w", err)
		}
		resp := r.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			msg := ""
			if resp.ErrorMessage != nil {
				msg = ": " + hop.Clean(*resp.ErrorMessage, 200)
			}
			return fmt.Errorf("SASL authentication: %w%s", err, msg)
		}
		out = nil
		if !done {
			if done, out, err = session.Challenge(resp.SASLAuthBytes); err != nil {
				return err
			}
		}
	}
	return nil
}

// metadata asks for the topics' metadata, never creating one.
func (w *kafkaWire) metadata(ctx context.Context, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	if req.Version = w.version(kmsg.Metadata, req.MaxVersion()); req.Version < 0 {
		return nil, errors.New("the broker lists no Metadata API in its ApiVersions answer")
	} else if req.Version < minSafeMetadata {
		return nil, fmt.Errorf("the broker speaks Metadata up to v%d only, which cannot ask without creating missing topics (v%d can)", req.Version, minSafeMetadata)
	}
	req.AllowAutoTopicCreation = false
	// No topics asks for none (nil would ask for every topic the
	// cluster has, for nothing the probe checks).
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	r, err := w.roundTrip(ctx, req, maxKafkaMetadata+int64(len(topics))*maxKafkaMetadataTopic)
	if err != nil {
		return nil, err
	}
	return r.(*kmsg.MetadataResponse), nil
}
