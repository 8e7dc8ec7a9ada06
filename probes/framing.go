package probes

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"

	"github.com/allinx/hopprobe/hop"
)

// Some client libraries allocate whatever length a peer announces before
// reading a byte of it: go-redis makes a slice of the announced bulk
// length or array count, kafka-go a buffer of the announced response
// size. The byte budget alone cannot stop that (the allocation comes
// first, and an announced 2^62 is a fatal out-of-memory, not a panic),
// so these wrappers read the framing as it passes and refuse an
// announced length that could not fit in what is left of the budget.
// They parse framing only; the libraries still parse everything else.

// respFrames checks the RESP stream of a Redis connection.
type respFrames struct {
	net.Conn
	s *scope
	// skip is how many payload bytes (and their CRLF) of a bulk string
	// are still to pass.
	skip int64
	// line holds the start of the current type line, enough for a length.
	line    []byte
	inLine  bool
	overlen bool
	// open holds, per aggregate the reply is inside, how many elements
	// it still owes; its length is the nesting depth. go-redis reads a
	// nested reply by recursion and builds every element it announces,
	// so both are bounded before the library sees the bytes.
	open []int64
	// announced counts the elements of the current top-level reply.
	announced int64
	// rest is how much of the current chunk follows the line being
	// checked: already counted against the budget, still to be parsed.
	rest int64
	err  error
}

const minRESPElem = 3 // "_\r\n"

// What one Redis reply may announce. A probe's replies are a PONG, a
// HELLO map of seven entries, a two-element master address and bulk
// strings (INFO, CLUSTER INFO); nothing it asks for nests past three
// levels or holds a thousand elements. An element go-redis builds costs
// it 16 to 64 bytes (an interface, a string header, a slice), so a
// budget's worth of three-byte elements would cost ten to twenty times
// the budget: these bounds keep an element-dense reply to a few hundred
// KiB whatever the budget.
const (
	maxRESPDepth    = 16
	maxRESPElements = 4096
)

func (f *respFrames) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.Conn.Read(p)
	if ferr := f.scan(p[:n]); ferr != nil {
		f.err = ferr
		return 0, ferr
	}
	return n, err
}

func (f *respFrames) left() int64 { return f.s.limit - f.s.read.Load() + f.rest }

func (f *respFrames) scan(b []byte) error {
	for len(b) > 0 {
		if f.skip > 0 {
			b = skip(&f.skip, b)
			continue
		}
		if !f.inLine {
			f.inLine, f.line, f.overlen = true, f.line[:0], false
			f.element()
		}
		c := b[0]
		b = b[1:]
		if c != '\n' {
			if len(f.line) < 32 {
				f.line = append(f.line, c)
			} else {
				f.overlen = true
			}
			continue
		}
		f.inLine = false
		f.rest = int64(len(b))
		if err := f.header(); err != nil {
			return err
		}
	}
	return nil
}

// element accounts for a value starting: it fills a slot of the
// innermost open aggregate, and closes those it completes.
func (f *respFrames) element() {
	for len(f.open) > 0 && f.open[len(f.open)-1] == 0 {
		f.open = f.open[:len(f.open)-1]
	}
	if len(f.open) > 0 {
		f.open[len(f.open)-1]--
	} else {
		f.announced = 0 // a new reply
	}
}

// owed is how many elements the open aggregates still owe: each needs
// at least minRESPElem bytes, so the budget bounds them.
func (f *respFrames) owed() int64 {
	var n int64
	for _, k := range f.open {
		n += k
	}
	return n
}

// header checks one complete type line (without its '\n').
func (f *respFrames) header() error {
	if len(f.line) == 0 {
		return nil
	}
	typ := f.line[0]
	var per int64
	switch typ {
	case '$', '=', '!': // bulk string, verbatim string, bulk error
	case '*', '~', '>': // array, set, push
		per = 1
	case '%', '|': // map, attribute: key and value per entry
		per = 2
	default:
		return nil // simple types are lines; their length is what was read
	}
	if f.overlen {
		return f.s.tooLarge("a RESP length field longer than 32 bytes")
	}
	n, err := strconv.ParseInt(string(trimCR(f.line[1:])), 10, 64)
	if err != nil || n < -1 {
		return fmt.Errorf("the peer sent a malformed RESP length %q", hop.Clean(string(f.line), 40))
	}
	if n < 0 { // null
		return nil
	}
	left := f.left()
	if per == 0 {
		if n > left {
			return f.s.tooLarge("a %d-byte Redis reply announced, over the %s budget (max_response_bytes)", n, byteSize(f.s.limit))
		}
		f.skip = n + 2
		return nil
	}
	if n > left/minRESPElem/per || (f.owed()+n*per) > left/minRESPElem {
		return f.s.tooLarge("%d Redis elements announced, more than the %s budget (max_response_bytes) can hold", n, byteSize(f.s.limit))
	}
	if n == 0 {
		return nil
	}
	// An aggregate with nothing left to read is still open here: this
	// one is its last element.
	if len(f.open) >= maxRESPDepth {
		return f.s.tooLarge("a Redis reply nested more than %d levels deep", maxRESPDepth)
	}
	if f.announced+n*per > maxRESPElements {
		return f.s.tooLarge("a Redis reply of %d elements, more than the %d a probe reads", f.announced+n*per, maxRESPElements)
	}
	f.open = append(f.open, n*per)
	f.announced += n * per
	return nil
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// kafkaFrames checks the size prefix of every Kafka response.
type kafkaFrames struct {
	net.Conn
	s    *scope
	head [4]byte
	have int
	skip int64
	err  error
}

func (f *kafkaFrames) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.Conn.Read(p)
	b := p[:n]
	for len(b) > 0 {
		if f.skip > 0 {
			b = skip(&f.skip, b)
			continue
		}
		k := copy(f.head[f.have:], b)
		f.have += k
		b = b[k:]
		if f.have < 4 {
			continue
		}
		f.have = 0
		size := int64(int32(binary.BigEndian.Uint32(f.head[:])))
		if size < 0 || size > f.s.limit-f.s.read.Load()+int64(len(b)) {
			f.err = f.s.tooLarge("a %d-byte Kafka response announced, over the %s budget (max_response_bytes)", size, byteSize(f.s.limit))
			return 0, f.err
		}
		f.skip = size
	}
	return n, err
}

// skip passes over up to *n bytes of b (payload the framing check does
// not read) and returns the rest.
func skip(n *int64, b []byte) []byte {
	k := min(*n, int64(len(b)))
	*n -= k
	return b[k:]
}
