package probes

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/allinx/hopprobe/hop"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/scram"
	franzsasl "github.com/twmb/franz-go/pkg/sasl"
)

// MaxSCRAMIterations is the most SCRAM iterations a probe computes for a
// peer: Kafka's own maximum (brokers store credentials with 4,096 to
// 16,384). The peer chooses the count, and a billion keeps a CPU busy
// for minutes, past any timeout, where nothing can cancel the hashing.
const MaxSCRAMIterations = 16384

// scramWork refuses a SCRAM server-first message that asks for more
// iterations than MaxSCRAMIterations; other messages pass.
func scramWork(challenge []byte) error {
	for _, kv := range bytes.Split(challenge, []byte(",")) {
		v, ok := bytes.CutPrefix(kv, []byte("i="))
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err == nil && n <= MaxSCRAMIterations {
			return nil
		}
		return fmt.Errorf("the peer asks for %s SCRAM iterations, more than the %d a probe computes (a peer that chooses the work could keep a CPU busy past any timeout)",
			hop.Clean(string(v), 24), MaxSCRAMIterations)
	}
	return nil
}

// franzSCRAMCap checks franz-go's SCRAM exchange before it hashes.
type franzSCRAMCap struct{ franzsasl.Mechanism }

func (m franzSCRAMCap) Authenticate(ctx context.Context, host string) (franzsasl.Session, []byte, error) {
	s, first, err := m.Mechanism.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return franzSCRAMSession{s}, first, nil
}

type franzSCRAMSession struct{ franzsasl.Session }

func (s franzSCRAMSession) Challenge(b []byte) (bool, []byte, error) {
	if err := scramWork(b); err != nil {
		return false, nil, err
	}
	return s.Session.Challenge(b)
}

// cappedKafkaGoSCRAM is kafka-go's SCRAM mechanism (the canary's), its
// work capped like franz-go's.
func cappedKafkaGoSCRAM(algo scram.Algorithm, user, pw string) (sasl.Mechanism, error) {
	m, err := scram.Mechanism(algo, user, pw)
	if err != nil {
		return nil, err
	}
	return kafkaGoSCRAMCap{m}, nil
}

// kafkaGoSCRAMCap checks kafka-go's SCRAM exchange.
type kafkaGoSCRAMCap struct{ sasl.Mechanism }

func (m kafkaGoSCRAMCap) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	s, first, err := m.Mechanism.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	return kafkaGoSCRAMState{s}, first, nil
}

type kafkaGoSCRAMState struct{ sasl.StateMachine }

func (s kafkaGoSCRAMState) Next(ctx context.Context, challenge []byte) (bool, []byte, error) {
	if err := scramWork(challenge); err != nil {
		return false, nil, err
	}
	return s.StateMachine.Next(ctx, challenge)
}
