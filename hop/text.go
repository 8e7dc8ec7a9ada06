package hop

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on peer text that reaches an operator: a hop's error, and each
// of its details. A peer chooses these bytes (a Server header, a Redis
// -ERR line, a PostgreSQL notice), so they are cut short and stripped of
// anything a terminal or a log viewer would interpret.
const (
	MaxReasonBytes = 512
	MaxDetailBytes = 256
)

// Clean returns s as at most max bytes of printable text: control
// characters (ANSI escapes, NUL, C1 codes, bidi overrides) become \xNN or
// \u{NNNN}, invalid UTF-8 becomes \xNN, newlines and tabs become spaces,
// and a longer text is cut with a note of how much was left out.
func Clean(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case r == '\n' || r == '\r' || r == '\t':
			piece = " "
		case r < 0x80 && !unicode.IsPrint(r):
			piece = fmt.Sprintf(`\x%02x`, r)
		case !unicode.IsPrint(r) && r != ' ':
			piece = fmt.Sprintf(`\u{%04x}`, r)
		default:
			piece = s[i : i+size]
		}
		if b.Len()+len(piece) > max {
			note := fmt.Sprintf("… (%d more bytes)", len(s)-i)
			out := b.String()
			for len(out)+len(note) > max && len(out) > 0 {
				_, sz := utf8.DecodeLastRuneInString(out)
				out = out[:len(out)-sz]
			}
			return out + note
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// Bound makes live text (a drift subject, a pod name) fit where it
// becomes a name or a label value: printable, at most max bytes (max
// above 9), and still distinct when cut, since a hash of the whole
// stands in for what was cut.
func Bound(v string, max int) string {
	c := Clean(v, 4*len(v)+16) // escapes only, never cuts
	if len(c) <= max && c == v {
		return v
	}
	cut := c[:min(len(c), max-9)]
	for !utf8.ValidString(cut) {
		cut = cut[:len(cut)-1]
	}
	h := fnv.New32a()
	h.Write([]byte(v))
	return fmt.Sprintf("%s-%08x", cut, h.Sum32())
}
