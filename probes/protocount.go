package probes

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxProtoFields is the most fields one etcd reply may hold, all levels
// together. A probe reads a status (about twenty fields) and one key
// (under ten). protobuf-go builds a struct of about a hundred bytes for
// each element of a repeated message, from as little as two bytes on the
// wire, so a reply within the byte budget could otherwise become fifty
// times its size: 4 MiB of empty key-values is 200 MiB of structs.
const maxProtoFields = 1024

// countedCodec is gRPC's protobuf codec behind a count: a reply is walked
// by its message's schema, and one with more than maxProtoFields fields
// is refused before protobuf-go builds anything. The walk recurses only
// into message fields the schema declares, and every level counts, so
// it goes no deeper than maxProtoFields (etcd's schema: three levels). A
// group, the one way to nest without a schema, is refused: no etcd
// message has one.
type countedCodec struct{ encoding.CodecV2 }

func newCountedCodec() countedCodec { return countedCodec{encoding.GetCodecV2("proto")} }

// errTooManyFields is the reason of a reply past maxProtoFields.
var errTooManyFields = fmt.Errorf("%w: an etcd reply of more than %d fields (a status and one key need a few dozen)", ErrResponseTooLarge, maxProtoFields)

func (c countedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(proto.Message); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		n, err := countFields(buf.ReadOnlyData(), m.ProtoReflect().Descriptor(), 0)
		buf.Free()
		if err != nil {
			return err
		}
		if n > maxProtoFields {
			return errTooManyFields
		}
	}
	return c.CodecV2.Unmarshal(data, v)
}

// countFields counts the fields of b, a message of type md, and of the
// messages nested in it, stopping past maxProtoFields.
func countFields(b []byte, md protoreflect.MessageDescriptor, n int) (int, error) {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return n, errMalformedProto
		}
		b = b[k:]
		if typ == protowire.StartGroupType {
			return n, errProtoGroup
		}
		v := protowire.ConsumeFieldValue(num, typ, b)
		if v < 0 {
			return n, errMalformedProto
		}
		if n++; n > maxProtoFields {
			return n, nil
		}
		if fd := md.Fields().ByNumber(num); fd != nil && typ == protowire.BytesType && fd.Message() != nil && !fd.IsMap() {
			inner, _ := protowire.ConsumeBytes(b[:v])
			var err error
			if n, err = countFields(inner, fd.Message(), n); err != nil || n > maxProtoFields {
				return n, err
			}
		} else if fd != nil && fd.IsMap() {
			n++ // a map entry builds a key and a value
		}
		b = b[v:]
	}
	return n, nil
}

var (
	errMalformedProto = errors.New("the peer sent a malformed protobuf message")
	errProtoGroup     = errors.New("the peer sent a protobuf group, which no etcd message has (groups nest without a bound)")
)
