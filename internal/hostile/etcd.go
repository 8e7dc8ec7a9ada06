package hostile

import (
	"bytes"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// grpcBehaviours are etcd peers that speak gRPC correctly and answer a
// method with protobuf bytes written by hand: what they send is valid
// protobuf that a client would build into far more than its size.
var grpcBehaviours = map[string]func(method string) []byte{
	// Range answers 1,500,000 empty key-values in 3 MB: protobuf-go
	// would build a struct of about a hundred bytes for each.
	"etcd-kv-flood": etcdAnswer(func() []byte { return bytes.Repeat([]byte{0x12, 0}, 1500000) }),
	// Range answers one key whose value is 16 MiB of zeros, sent
	// gzip-compressed (about 16 KiB) although the client offered no
	// compression.
	"etcd-gzip-unoffered": etcdAnswer(func() []byte {
		value := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), make([]byte, 16<<20))
		return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), value)
	}),
	// Range answers a group (field 15) nested 100,000 deep in 200 KB.
	"etcd-nested-groups": etcdAnswer(func() []byte {
		return append(bytes.Repeat([]byte{0x7b}, 100000), bytes.Repeat([]byte{0x7c}, 100000)...)
	}),
}

// etcdStatus is a healthy member's status: member 1, leader 1.
var etcdStatus = []byte{0x0a, 0x02, 0x10, 0x01, 0x20, 0x01}

// etcdAnswer answers Status healthily and Range with what rangeReply
// makes, made once on first use: a test binary linking this package
// should not build 16 MiB at start-up for a peer it may never run.
func etcdAnswer(rangeReply func() []byte) func(string) []byte {
	reply := sync.OnceValue(rangeReply)
	return func(method string) []byte {
		switch method {
		case "/etcdserverpb.Maintenance/Status":
			return etcdStatus
		case "/etcdserverpb.KV/Range":
			return reply()
		}
		return nil
	}
}

// rawMsg is a message as its bytes, for rawCodec.
type rawMsg []byte

// rawCodec passes protobuf bytes through as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMsg))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMsg) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func startGRPC(name string, answer func(string) []byte) (*Peer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{grpc.ForceServerCodecV2(rawCodec{})}
	if strings.Contains(name, "gzip") {
		// The old API compresses whatever the client offered; its
		// replacement refuses to send what was not offered.
		//lint:ignore SA1019 the one way for a server to compress unasked
		opts = append(opts, grpc.RPCCompressor(grpc.NewGZIPCompressor()))
	}
	srv := grpc.NewServer(append(opts,
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(stream)
			var in rawMsg
			if err := stream.RecvMsg(&in); err != nil {
				return err
			}
			out := rawMsg(answer(method))
			if out == nil {
				return status.Errorf(codes.Unimplemented, "%s", method)
			}
			return stream.SendMsg(&out)
		}))...)
	p := &Peer{Name: name, Addr: ln.Addr().String(), grpc: srv}
	p.wg.Go(func() { _ = srv.Serve(ln) })
	return p, nil
}
