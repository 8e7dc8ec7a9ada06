package probes

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/mem"
)

// These fuzz targets run the real client libraries, behind the same
// guard a probe puts them behind, against a peer that answers with the
// fuzzer's bytes: none may panic, and what they allocate may grow by at
// most maxAllocPerByte for each byte of the answer, over what an empty
// answer costs.
const maxAllocPerByte = 16

// replyWith is the least that client allocated in three exchanges with
// a peer answering reply: the least, because allocations are counted
// process-wide and another goroutine (a test's leftover, the race
// detector's) can add to any one of them.
func replyWith(reply []byte, budget int64, client func(context.Context, *scope, net.Conn)) uint64 {
	return leastOfThree(func() uint64 { return answerOnce(reply, budget, client) })
}

// leastOfThree is the least of three measurements.
func leastOfThree(measure func() uint64) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		least = min(least, measure())
	}
	return least
}

// allocatedBy is what f allocated, process-wide.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// answerOnce runs client against a peer on a pipe that reads a request
// and answers with reply, under a scope of budget bytes, and returns
// what the exchange allocated.
func answerOnce(reply []byte, budget int64, client func(context.Context, *scope, net.Conn)) uint64 {
	peer, conn := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer peer.Close()
		buf := make([]byte, 4096)
		_ = peer.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := peer.Read(buf); err == nil {
			_, _ = peer.Write(reply)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ctx, sc := withScope(ctx, budget)
	n := allocatedBy(func() { client(ctx, sc, sc.guard(conn)) })
	sc.end()
	wg.Wait()
	return n
}

// presized is what a library may allocate for counts a reply announces
// before their elements arrive: go-redis makes the slice of an array as
// soon as it reads its count, which the RESP framing holds to 4,096 (64
// KiB of interfaces, more under -race).
const presized = 256 << 10

// checkAllocs fails when reply cost more than maxAllocPerByte per byte
// and presized over the empty answer's cost (measured once per target,
// in this run).
func checkAllocs(t *testing.T, reply []byte, cost, empty uint64) {
	t.Helper()
	if cost > empty && cost-empty > maxAllocPerByte*uint64(len(reply))+presized {
		t.Fatalf("a %d-byte answer cost %d bytes of allocations over an empty answer's %d (more than %d per byte)", len(reply), cost-empty, empty, maxAllocPerByte)
	}
}

func redisPing(ctx context.Context, sc *scope, conn net.Conn) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 1, MaxRetries: -1, DisableIdentity: true, Protocol: 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer:                   func(context.Context, string, string) (net.Conn, error) { return &respFrames{Conn: conn, s: sc}, nil }})
	defer c.Close()
	_, _ = c.Ping(ctx).Result()
	_, _ = c.Info(ctx, "replication").Result()
}

func FuzzGoRedisBehindTheGuard(f *testing.F) {
	f.Add([]byte("+PONG\r\n"))
	f.Add([]byte("*3\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n%1\r\n+k\r\n+v\r\n"))
	f.Add([]byte("*4096\r\n$0\r\n\r\n"))
	f.Add([]byte("-ERR \x1b[31m\r\n"))
	fuzzAnswers(f, nil, redisPing)
}

// fuzzAnswers has a peer answer client with the fuzzer's bytes, in the
// frame frame makes of them (nil: as they are), and checks what each
// answer costs against an empty one's cost, measured once.
func fuzzAnswers(f *testing.F, frame func([]byte) []byte, client func(context.Context, *scope, net.Conn)) {
	if frame == nil {
		frame = func(b []byte) []byte { return b }
	}
	empty := sync.OnceValue(func() uint64 { return replyWith(frame(nil), 64<<10, client) })
	f.Fuzz(func(t *testing.T, b []byte) {
		reply := frame(b)
		checkAllocs(t, reply, replyWith(reply, 64<<10, client), empty())
	})
}

func kafkaMetadataAsk(ctx context.Context, sc *scope, conn net.Conn) {
	w := newKafkaWire(&kafkaFrames{Conn: conn, s: sc})
	w.versions = map[kmsg.Key]int16{kmsg.Metadata: 12}
	_, _ = w.metadata(ctx, []string{"orders"})
}

// kafkaFrame is a response frame for correlation id 1 around body.
func kafkaFrame(body []byte) []byte { return kafkaFrameFor(1, body) }

// kafkaFrameFor is a response frame for correlation id corr around body.
func kafkaFrameFor(corr uint32, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
	out = binary.BigEndian.AppendUint32(out, corr)
	return append(out, body...)
}

func FuzzKmsgMetadataBehindTheGuard(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0, 0, 0, 0, 0, 5, 0, 0, 0, 1, 1, 0, 0, 0x23, 0x84, 0, 0})
	fuzzAnswers(f, kafkaFrame, kafkaMetadataAsk)
}

// FuzzEtcdReplyBehindTheCount decodes any bytes as the two etcd replies
// a probe reads, through the codec the probe gives gRPC: protobuf-go
// builds only what the field count let through.
func FuzzEtcdReplyBehindTheCount(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x10, 0x01, 0x20, 0x01})
	f.Add(bytes.Repeat([]byte{0x12, 0}, 2000))
	f.Add(append(bytes.Repeat([]byte{0x7b}, 100), bytes.Repeat([]byte{0x7c}, 100)...))
	f.Add([]byte{0x12, 0x04, 0x2a, 0x02, 'o', 'k'})
	codec := newCountedCodec()
	decode := func(b []byte) {
		_ = codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &etcdserverpb.RangeResponse{})
		_ = codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &etcdserverpb.StatusResponse{})
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAllocs(t, b, leastOfThree(func() uint64 { return allocatedBy(func() { decode(b) }) }), 0)
	})
}

func pgxConnect(ctx context.Context, sc *scope, conn net.Conn) {
	cc, err := pgx.ParseConfig("host=127.0.0.1 port=5432 user=hopprobe dbname=postgres sslmode=disable")
	if err != nil {
		panic(err)
	}
	cc.Password = "Fuzz-Password-1"
	cc.RequireAuth = "scram-sha-256"
	cc.DialFunc = func(context.Context, string, string) (net.Conn, error) { return conn, nil }
	cc.AfterNetConnect = guardPGAuth(sc.limit)
	cc.MaxProtocolMessageBodyLen = int(sc.limit)
	if c, err := pgx.ConnectConfig(ctx, cc); err == nil {
		_ = c.Close(ctx)
	}
}

// FuzzPgxBehindTheGuard answers pgx's startup message with the fuzzer's
// bytes, through the authentication guard.
func FuzzPgxBehindTheGuard(f *testing.F) {
	f.Add([]byte("R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"))
	f.Add([]byte("R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x0aa\x00b\x00Z\x00\x00\x00\x05I"))
	f.Add([]byte("v\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Add([]byte("E\x00\x00\x00\x0bSFATAL\x00\x00"))
	fuzzAnswers(f, nil, pgxConnect)
}
