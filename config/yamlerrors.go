package config

// How yaml.v3's errors are turned into file:line reasons an operator
// can act on.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	lineRe      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRe   = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	unmarshalRe = regexp.MustCompile(`^cannot unmarshal !!(\w+) ` + "`" + `?([^` + "`" + `]*)` + "`" + `? into (\S+)$`)
)

func yamlError(file string, data []byte, err error) *Error {
	msg := err.Error()
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Msg: "not valid YAML: " + msg}
	}
	n, _ := strconv.Atoi(m[1])
	e := &Error{File: file, Line: n, Msg: "not valid YAML: " + m[2]}
	// yaml.v3 names the line where it noticed, often the one after the
	// mistake (or the end of the file for an unclosed quote): look
	// around it for what is wrong, and show that line with a caret.
	lines := strings.Split(string(data), "\n")
	from, to := max(1, n-2), min(len(lines), n+1)
	if strings.Contains(m[2], "end of stream") {
		from = 1
	}
	for i := from; i <= to; i++ {
		if col, why := suspicious(lines, i); col >= 0 {
			if i != n {
				e.Msg += fmt.Sprintf(" (noticed at line %d)", n)
				e.Line = i
			}
			e.Msg += fmt.Sprintf("\n  %4d | %s\n       | %s^ %s", i, lines[i-1], strings.Repeat(" ", col), why)
			return e
		}
	}
	if n >= 1 && n <= len(lines) {
		text := lines[n-1]
		col := len(text) - len(strings.TrimLeft(text, " "))
		e.Msg += fmt.Sprintf("\n  %4d | %s\n       | %s^", n, text, strings.Repeat(" ", col))
	}
	return e
}

// suspicious looks for the usual YAML mistakes on line i (1-based): a
// tab in the indentation, a quote or bracket left open, an indentation
// that no enclosing block uses. It returns the column to point at and
// what is wrong, or -1.
func suspicious(lines []string, i int) (int, string) {
	text := lines[i-1]
	trimmed := strings.TrimLeft(text, " \t")
	indent := len(text) - len(trimmed)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return -1, ""
	}
	if t := strings.IndexByte(text[:indent], '\t'); t >= 0 {
		return t, "a tab in the indentation; YAML indents with spaces"
	}
	var open []int // positions of unclosed [ and {
	quote, quoteAt := byte(0), 0
	for j := indent; j < len(text); j++ {
		c := text[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			if j == indent || strings.ContainsRune(" :[{,", rune(text[j-1])) {
				quote, quoteAt = c, j
			}
		case c == '#' && text[j-1] == ' ':
			j = len(text)
		case c == '[' || c == '{':
			open = append(open, j)
		case c == ']' || c == '}':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	if quote != 0 {
		return quoteAt, "this quote is not closed on its line"
	}
	if len(open) > 0 {
		return open[len(open)-1], "this bracket is not closed on its line"
	}
	// An indentation deeper than none before it is a new block; a
	// shallower one must return to a level an enclosing line uses.
	for k := i - 1; k >= 1; k-- {
		prev := lines[k-1]
		pt := strings.TrimLeft(prev, " ")
		if pt == "" || strings.HasPrefix(pt, "#") {
			continue
		}
		pi := len(prev) - len(pt)
		if pi == indent {
			return -1, ""
		}
		if pi < indent {
			// A deeper line after a shallower one opens a block; fine
			// only when it is the first line under it.
			if k == i-1 || !lastDeeper(lines, k, i) {
				return -1, ""
			}
			return indent, fmt.Sprintf("indented by %d, which no enclosing block uses", indent)
		}
	}
	return -1, ""
}

// lastDeeper reports whether some line between k and i (exclusive) is
// indented deeper than line i: then line i dedents to a level between
// two blocks.
func lastDeeper(lines []string, k, i int) bool {
	ind := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	for j := k + 1; j < i; j++ {
		if t := strings.TrimSpace(lines[j-1]); t != "" && !strings.HasPrefix(t, "#") && ind(lines[j-1]) > ind(lines[i-1]) {
			return true
		}
	}
	return false
}

func typeError(file, m string) *Error {
	lm := lineRe.FindStringSubmatch(m)
	if lm == nil {
		return &Error{File: file, Msg: m}
	}
	n, _ := strconv.Atoi(lm[1])
	msg := lm[2]
	if u := unknownRe.FindStringSubmatch(msg); u != nil {
		msg = fmt.Sprintf("unknown key %q in %s", u[1], humanType(u[2]))
	} else if u := unmarshalRe.FindStringSubmatch(msg); u != nil {
		msg = fmt.Sprintf("wrong type: got %s %q, want %s", u[1], u[2], humanGoType(u[3]))
	}
	return &Error{File: file, Line: n, Msg: msg}
}

func humanType(t string) string {
	switch t {
	case "Config":
		return "the top level"
	case "EntryHop":
		return "an entry hop"
	case "RouteProbe":
		return "a route's probe block"
	default:
		return "a " + strings.ToLower(t)
	}
}

func humanGoType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 30s"
	case t == "int" || t == "int64":
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map"), strings.HasPrefix(t, "config."):
		return "a mapping"
	default:
		return t
	}
}
