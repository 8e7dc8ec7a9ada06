package probes

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker's malformed answers get reasons that say what was wrong with
// them, not a generic decode error or a nonsense version.
func TestKafkaWireNamesWhatIsWrongWithAnAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"a frame too short for a response", binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), 1), "a 2-byte frame, too short"},
		{"a frame for another request", kafkaFrameFor(7, []byte{0, 0, 0, 0, 0, 0}), "answered request 1 with a frame for request 7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			answerOnce(c.reply, 64<<10, func(ctx context.Context, sc *scope, conn net.Conn) {
				err = newKafkaWire(&kafkaFrames{Conn: conn, s: sc}).negotiate(ctx)
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a reason saying %q", err, c.want)
			}
		})
	}
	w := newKafkaWire(nil)
	w.versions = map[kmsg.Key]int16{kmsg.ApiVersions: 3}
	if _, err := w.metadata(ctx, nil); err == nil || !strings.Contains(err.Error(), "lists no Metadata API") {
		t.Fatalf("a broker without Metadata: got %v", err)
	}
	w.versions[kmsg.Metadata] = 3
	if _, err := w.metadata(ctx, nil); err == nil || !strings.Contains(err.Error(), "up to v3 only, which cannot ask without creating") {
		t.Fatalf("a broker with Metadata v3 only: got %v", err)
	}
}
