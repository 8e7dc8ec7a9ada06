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

func yamlError(file string, err error) *Error {
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: n, Msg: "not valid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "not valid YAML: " + msg}
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
