package config

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// SecretRef points at a secret; the topology file never holds one.
type SecretRef struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	// Inline is set when the file wrote a literal value; validation rejects it.
	Inline bool `yaml:"-"`
}

// UnmarshalYAML accepts only {env: NAME} or {file: PATH}. A literal value
// is remembered as Inline (and its text dropped) so that validation can
// name the line without ever echoing the secret.
func (s *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = SecretRef{Inline: true}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a secret reference must be {env: NAME} or {file: PATH}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "env":
			s.Env = val.Value
		case "file":
			s.File = val.Value
		default:
			return fmt.Errorf("line %d: unknown key %q in a secret reference (want env or file)", k.Line, k.Value)
		}
	}
	return nil
}

// String never reveals the secret, only where it comes from.
func (s *SecretRef) String() string {
	switch {
	case s == nil:
		return "none"
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	default:
		return "unset"
	}
}

// Resolve reads the secret. Errors name the reference, never the value.
func (s *SecretRef) Resolve() (string, error) {
	if s == nil {
		return "", nil
	}
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("secret environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("cannot read secret file %s: %w", s.File, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", fmt.Errorf("secret reference has neither env nor file")
}
