package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Built-in defaults, chosen so that a path is probed twice a minute and a
// dead hop cannot hold a probe slot for long.
const (
	DefaultInterval     = 30 * time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultConcurrency  = 32
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxResponseBytes is what one probe may read from its peers:
	// far above a healthy answer, far below the Deployment's memory limit.
	DefaultMaxResponseBytes = 4 << 20
	// DefaultHistory is how many walks of each path are kept with their
	// evidence; MaxHistory bounds it (a walk's evidence is a few KiB).
	DefaultHistory = 20
	MaxHistory     = 1000
	// A failed hop is probed again twice, a second apart, before its
	// failure counts: long enough for a lost packet's retransmission or a
	// restarting peer's accept queue, short enough to page within the
	// minute. MaxConfirmRetries and MaxConfirmSpacing bound what a file
	// may ask for.
	DefaultConfirmRetries = 2
	DefaultConfirmSpacing = time.Second
	MaxConfirmRetries     = 5
	MaxConfirmSpacing     = 10 * time.Second
	// DefaultBrokenInterval is how often a broken path is walked until
	// it recovers; MinBrokenInterval bounds how often a file may ask.
	DefaultBrokenInterval = 5 * time.Second
	MinBrokenInterval     = time.Second
	// MinSecretLength is the shortest password hopprobe accepts: a shorter
	// one cannot be scrubbed from messages without mangling them ("a",
	// "prod"), so it would either leak or garble every error.
	MinSecretLength = 8
)

// Error is one problem in a topology file, located by line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates a topology file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read topology file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates topology YAML; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(name, data, err)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: name, Line: 1, Msg: "the file is empty; expected a topology with entries, routes, services and stores"}}
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var unknown Errors
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Errors{yamlError(name, data, err)}
		}
		onlyUnknown := true
		for _, m := range te.Errors {
			unknown = append(unknown, typeError(name, m))
			onlyUnknown = onlyUnknown && strings.Contains(m, " not found in type ")
		}
		// A value of the wrong type leaves a field empty, and checking
		// the rest would add complaints about it; unknown keys leave the
		// rest as written, so it is checked in the same pass.
		if !onlyUnknown {
			return nil, unknown
		}
	}
	cfg.File = name
	cfg.defaultVantages()
	v := &validator{cfg: cfg, file: name, root: root.Content[0]}
	v.validate()
	if errs := append(unknown, v.errs...); len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, errs
	}
	cfg.Problems = v.problems
	cfg.applyDefaults()
	cfg.resolvePaths(filepath.Dir(name))
	return cfg, nil
}
