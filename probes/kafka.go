package probes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// kafkaProber fetches metadata from the bootstrap brokers, checks that
// every configured topic exists with a leader for each partition, and,
// only when a canary topic is configured, produces one message to it and
// reads it back.
type kafkaProber struct{}

func (kafkaProber) Probe(ctx context.Context, t *Target, rep *Report) error {
	st := t.Store
	d, err := kafkaDialer(t)
	if err != nil {
		return err
	}
	var conn *kafka.Conn
	start := time.Now()
	for _, addr := range storeAddrs(st) {
		if conn, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
	}
	rep.since("connect", start)
	if err != nil {
		return fmt.Errorf("no bootstrap broker of %s answered: %w", st.Name, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	start = time.Now()
	brokers, err := conn.Brokers()
	if err != nil {
		return connected(fmt.Errorf("metadata request to %s failed: %w", st.Name, err))
	}
	rep.Detail("brokers", strconv.Itoa(len(brokers)))
	o := st.Kafka
	if o != nil && len(o.Topics) > 0 {
		parts, err := conn.ReadPartitions(o.Topics...)
		if err != nil {
			return connected(fmt.Errorf("metadata for topics %v on %s: %w", o.Topics, st.Name, err))
		}
		if err := checkPartitions(o.Topics, parts); err != nil {
			return connected(fmt.Errorf("%s: %w", st.Name, err))
		}
	}
	rep.since("metadata", start)
	if o == nil || o.CanaryTopic == "" {
		return nil
	}
	start = time.Now()
	err = canary(ctx, d, storeAddrs(st)[0], o.CanaryTopic)
	rep.since("canary", start)
	if err != nil {
		return connected(fmt.Errorf("canary round trip on %s topic %s: %w", st.Name, o.CanaryTopic, err))
	}
	return nil
}

func checkPartitions(topics []string, parts []kafka.Partition) error {
	found := map[string]int{}
	for _, p := range parts {
		found[p.Topic]++
		if p.Leader.Host == "" || p.Leader.ID < 0 {
			return fmt.Errorf("topic %s partition %d has no leader", p.Topic, p.ID)
		}
	}
	for _, tp := range topics {
		if found[tp] == 0 {
			return fmt.Errorf("topic %s does not exist", tp)
		}
	}
	return nil
}

// canary produces a unique message to partition 0 of the canary topic and
// reads from the offset it was written at until it comes back.
func canary(ctx context.Context, d *kafka.Dialer, addr, topic string) error {
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

func kafkaDialer(t *Target) (*kafka.Dialer, error) {
	d := &kafka.Dialer{DualStack: true, ClientID: "hopprobe"}
	tc, err := storeTLS(t)
	if err != nil {
		return nil, err
	}
	d.TLS = tc
	o := t.Store.Kafka
	if o == nil || o.SASL == nil {
		return d, nil
	}
	pw, err := o.SASL.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("SASL credentials for %s: %w", t.Store.Name, err)
	}
	var mech sasl.Mechanism
	switch o.SASL.Mechanism {
	case "plain":
		mech = plain.Mechanism{Username: o.SASL.Username, Password: pw}
	case "scram-sha-256":
		mech, err = scram.Mechanism(scram.SHA256, o.SASL.Username, pw)
	case "scram-sha-512":
		mech, err = scram.Mechanism(scram.SHA512, o.SASL.Username, pw)
	}
	if err != nil {
		return nil, fmt.Errorf("SASL for %s: %w", t.Store.Name, err)
	}
	d.SASLMechanism = mech
	return d, nil
}
