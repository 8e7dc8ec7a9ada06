package probes

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	franzsasl "github.com/twmb/franz-go/pkg/sasl"
	franzplain "github.com/twmb/franz-go/pkg/sasl/plain"
	franzscram "github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// kafkaProber asks the bootstrap brokers for metadata, checks that every
// configured topic exists with a leader for each partition, and, only
// when a canary topic is configured, produces one message to it and
// reads it back.
//
// The metadata request is encoded and decoded by franz-go's kmsg rather
// than kafka-go: kafka-go's ReadPartitions asks with topic auto-creation
// on, so on a broker with auto.create.topics.enable (Kafka's default)
// probing a documented-but-missing topic created it and then reported
// success. kmsg's MetadataRequest says AllowAutoTopicCreation: false.
// The exchange runs on the probe's goroutine (kafkawire.go), not in
// franz-go's client. kafka-go stays for the opt-in canary round trip,
// which is a write by design.
type kafkaProber struct{}

func (kafkaProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	st := t.Store
	sc := scopeOf(ctx)
	tc, err := storeTLS(t)
	if err != nil {
		return err
	}
	mech, err := kafkaSASL(t)
	if err != nil {
		return err
	}
	var topics []string
	o := st.Kafka
	if o != nil {
		topics = o.Topics
	}
	start := time.Now()
	resp, dialled, err := kafkaMetadata(ctx, sc, tc, mech, storeAddrs(st), topics, rep)
	if err != nil {
		if !dialled || Unreachable(err) {
			return fmt.Errorf("no bootstrap broker of %s answered metadata: %w", st.Name, err)
		}
		return connected(fmt.Errorf("metadata request to %s failed: %w", st.Name, err))
	}
	rep.Detail("brokers", strconv.Itoa(len(resp.Brokers)))
	rep.Detail("broker_list", brokerList(resp))
	rep.Detail("controller", strconv.Itoa(int(resp.ControllerID)))
	if leaders := partitionLeaders(resp); leaders != "" {
		rep.Detail("leaders", leaders)
	}
	if len(topics) > 0 {
		if err := checkTopics(topics, resp); err != nil {
			return connected(fmt.Errorf("%s: %w", st.Name, err))
		}
	}
	since(rep, "metadata", start)
	if o == nil || o.CanaryTopic == "" {
		return nil
	}
	start = time.Now()
	err = canary(ctx, kafkaDialer(sc, tc, mech), storeAddrs(st)[0], o.CanaryTopic)
	since(rep, "canary", start)
	if err != nil {
		return connected(fmt.Errorf("canary round trip on %s topic %s: %w", st.Name, o.CanaryTopic, err))
	}
	return nil
}

// checkTopics wants every topic present, without error, with a leader
// for each partition.
func checkTopics(topics []string, resp *kmsg.MetadataResponse) error {
	found := map[string]*kmsg.MetadataResponseTopic{}
	for i := range resp.Topics {
		if tp := &resp.Topics[i]; tp.Topic != nil {
			found[*tp.Topic] = tp
		}
	}
	for _, name := range topics {
		tp, ok := found[name]
		if !ok || tp.ErrorCode == kerr.UnknownTopicOrPartition.Code {
			return fmt.Errorf("topic %s does not exist", name)
		}
		if err := kerr.ErrorForCode(tp.ErrorCode); err != nil {
			return fmt.Errorf("topic %s: %w", name, err)
		}
		if len(tp.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions", name)
		}
		for _, p := range tp.Partitions {
			if p.Leader < 0 {
				return fmt.Errorf("topic %s partition %d has no leader", name, p.Partition)
			}
		}
	}
	return nil
}

// kafkaDial dials a broker under the probe's scope, with TLS on top when
// configured (done here, so that the framing check sees Kafka's frames
// and not TLS records).
func kafkaDial(sc *scope, tc *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := sc.dialTLS(ctx, network, addr, tc)
		if err != nil {
			return nil, err
		}
		return &kafkaFrames{Conn: c, s: sc}, nil
	}
}

// kafkaMetadata dials the bootstrap brokers in turn until one connects,
// and asks that one: ApiVersions, SASL when configured, then Metadata,
// all on this goroutine (kafkawire.go). A broker that connects and then
// fails is the answer; a probe reports what it saw. dialled says whether
// any broker connected.
func kafkaMetadata(ctx context.Context, sc *scope, tc *tls.Config, mech *kafkaMech, addrs, topics []string, rep *hop.Report) (*kmsg.MetadataResponse, bool, error) {
	dial := kafkaDial(sc, tc)
	var err error
	for _, addr := range addrs {
		start := time.Now()
		var conn net.Conn
		if conn, err = dial(ctx, "tcp", addr); err != nil {
			continue
		}
		rep.AddPhase("connect", time.Since(start))
		defer conn.Close()
		w := newKafkaWire(conn)
		if err = w.negotiate(ctx); err != nil {
			return nil, true, err
		}
		if mech != nil {
			if err = w.authenticate(ctx, mech.franz, addr); err != nil {
				return nil, true, err
			}
		}
		resp, err := w.metadata(ctx, topics)
		return resp, true, err
	}
	return nil, false, err
}

// canary produces a unique message to partition 0 of the canary topic and
// reads from the offset it was written at until it comes back.
func canary(ctx context.Context, d *kafka.Dialer, addr, topic string) error {
	boundKafkaGoInflation()
	conn, err := d.DialLeader(ctx, "tcp", addr, topic, 0)
	if err != nil {
		return fmt.Errorf("cannot reach the partition leader: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	off, err := conn.ReadLastOffset()
	if err != nil {
		return fmt.Errorf("reading the last offset: %w", err)
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	payload := "hopprobe-canary-" + hex.EncodeToString(nonce)
	if _, err := conn.WriteMessages(kafka.Message{Value: []byte(payload)}); err != nil {
		return fmt.Errorf("produce failed: %w", err)
	}
	if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("seek to %d failed: %w", off, err)
	}
	for {
		m, err := conn.ReadMessage(64 << 10)
		if err != nil {
			return fmt.Errorf("message produced at offset %d never came back: %w", off, err)
		}
		if string(m.Value) == payload {
			return nil
		}
	}
}

// kafkaMech is one SASL mechanism for both clients.
type kafkaMech struct {
	franz   franzsasl.Mechanism
	kafkaGo sasl.Mechanism
}

func kafkaSASL(t *hop.Target) (*kafkaMech, error) {
	o := t.Store.Kafka
	if o == nil || o.SASL == nil {
		return nil, nil
	}
	pw, err := resolveSecret(o.SASL.Password, "SASL credentials for "+t.Store.Name)
	if err != nil {
		return nil, err
	}
	m := &kafkaMech{}
	user := o.SASL.Username
	switch o.SASL.Mechanism {
	case "plain":
		m.franz = franzplain.Auth{User: user, Pass: pw}.AsMechanism()
		m.kafkaGo = plain.Mechanism{Username: user, Password: pw}
	case "scram-sha-256":
		m.franz = franzSCRAMCap{franzscram.Auth{User: user, Pass: pw}.AsSha256Mechanism()}
		m.kafkaGo, err = cappedKafkaGoSCRAM(scram.SHA256, user, pw)
	case "scram-sha-512":
		m.franz = franzSCRAMCap{franzscram.Auth{User: user, Pass: pw}.AsSha512Mechanism()}
		m.kafkaGo, err = cappedKafkaGoSCRAM(scram.SHA512, user, pw)
	}
	if err != nil {
		return nil, fmt.Errorf("SASL for %s: %w", t.Store.Name, err)
	}
	return m, nil
}

// kafkaDialer is kafka-go's dialer for the canary, under the scope.
func kafkaDialer(sc *scope, tc *tls.Config, mech *kafkaMech) *kafka.Dialer {
	d := &kafka.Dialer{ClientID: "hopprobe", DialFunc: kafkaDial(sc, tc)}
	if mech != nil {
		d.SASLMechanism = mech.kafkaGo
	}
	return d
}

// kafkaKind is the kafka block of a store; its SASL password is a
// secret to scrub as well.
var kafkaKind = config.StoreKind{
	HasBlock: func(s *config.Store) bool { return s.Kafka != nil },
	Check: func(s *config.Store, c *config.Checker) {
		o := s.Kafka
		for j, t := range o.Topics {
			if t == o.CanaryTopic && t != "" {
				c.Errorf([]any{"kafka", "topics", j}, "canary_topic %q is also listed as a business topic; the canary must have a topic of its own", t)
			}
		}
		if o.SASL != nil {
			if !config.OneOf(o.SASL.Mechanism, "plain", "scram-sha-256", "scram-sha-512") {
				c.Errorf([]any{"kafka", "sasl", "mechanism"}, "sasl mechanism %q must be plain, scram-sha-256 or scram-sha-512", o.SASL.Mechanism)
			}
			c.Secret([]any{"kafka", "sasl", "password"}, o.SASL.Password)
		}
	},
	Secrets: func(s *config.Store) []*config.SecretRef {
		if s.Kafka != nil && s.Kafka.SASL != nil {
			return []*config.SecretRef{s.Kafka.SASL.Password}
		}
		return nil
	},
}

// brokerList names the brokers a metadata answer lists, "id@host:port",
// sorted, at most 16.
func brokerList(resp *kmsg.MetadataResponse) string {
	var out []string
	for _, b := range resp.Brokers {
		out = append(out, fmt.Sprintf("%d@%s", b.NodeID, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))))
	}
	slices.Sort(out)
	if len(out) > 16 {
		out = append(out[:16], "…")
	}
	return strings.Join(out, ",")
}

// partitionLeaders gives the leader of each partition of the topics the
// probe asked about, "topic/partition=broker", at most 32.
func partitionLeaders(resp *kmsg.MetadataResponse) string {
	var out []string
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		for _, p := range t.Partitions {
			out = append(out, fmt.Sprintf("%s/%d=%d", *t.Topic, p.Partition, p.Leader))
		}
	}
	slices.Sort(out)
	if len(out) > 32 {
		out = append(out[:32], "…")
	}
	return strings.Join(out, ",")
}

// maxCanaryInflated is the most a compressed batch on the canary topic
// may inflate to. The canary produces one small uncompressed message,
// and a broker that recompresses (the topic's compression.type) makes a
// batch of about the same size; kafka-go inflates a compressed batch
// whole, into memory, whatever its codec says, before it reads a record.
const maxCanaryInflated = 1 << 20

var boundInflation sync.Once

// boundKafkaGoInflation puts a limit on every decompressor of kafka-go's
// codec table (the one table its readers consult): past
// maxCanaryInflated a batch fails instead of growing. kafka-go is used
// for nothing but the canary in this process.
func boundKafkaGoInflation() {
	boundInflation.Do(func() {
		for i, c := range compress.Codecs {
			if c != nil {
				compress.Codecs[i] = boundedCodec{c}
			}
		}
	})
}

type boundedCodec struct{ compress.Codec }

func (c boundedCodec) NewReader(r io.Reader) io.ReadCloser {
	return &boundedInflate{ReadCloser: c.Codec.NewReader(r), name: c.Name(), left: maxCanaryInflated}
}

type boundedInflate struct {
	io.ReadCloser
	name string
	left int64
}

func (b *boundedInflate) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Exactly at the limit is fine if the stream ends there.
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: a %s batch on the canary topic inflates past %s", ErrResponseTooLarge, b.name, byteSize(maxCanaryInflated))
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
