package config

import "slices"

// StoreKind is what the topology needs to know of one data store kind:
// whether a store carries its option block, how that block is checked,
// and which secrets a store of the kind holds besides its password. The
// probes package registers one per kind it can probe (its registry is
// the one table of kinds) when a program calls probes.RegisterKinds
// before it loads a topology.
type StoreKind struct {
	HasBlock func(*Store) bool
	// Check validates the option block, when the store has one; nil when
	// there is nothing to check.
	Check func(*Store, *Checker)
	// Secrets are the secret references beyond Store.Password.
	Secrets func(*Store) []*SecretRef
}

var (
	storeKinds     = map[string]StoreKind{}
	storeKindOrder []string
	// portProtocols and routeProtocols are the protocols a Service port
	// and a route may name, each a kind that probes them.
	portProtocols, routeProtocols []string
)

// RegisterProtocol adds a protocol a Service port may name (a kind that
// probes a port); onRoute says a route may name it too. Called by
// probes.RegisterKinds.
func RegisterProtocol(name string, onRoute bool) {
	if !slices.Contains(portProtocols, name) {
		portProtocols = append(portProtocols, name)
	}
	if onRoute && !slices.Contains(routeProtocols, name) {
		routeProtocols = append(routeProtocols, name)
	}
}

// RegisterStoreKind adds a data store kind; called by
// probes.RegisterKinds.
func RegisterStoreKind(name string, k StoreKind) {
	if _, dup := storeKinds[name]; !dup {
		storeKindOrder = append(storeKindOrder, name)
	}
	storeKinds[name] = k
}

// StoreSecrets are every secret reference of s: its password and what
// its kind holds besides (Kafka's SASL password).
func StoreSecrets(s *Store) []*SecretRef {
	out := []*SecretRef{s.Password}
	if k, ok := storeKinds[s.Kind]; ok && k.Secrets != nil {
		out = append(out, k.Secrets(s)...)
	}
	return slices.DeleteFunc(out, func(r *SecretRef) bool { return r == nil })
}

// Checker reports problems in one store's option block, by paths below
// the store ("postgres", "sslmode").
type Checker struct {
	v  *validator
	at []any
}

// Errorf records a problem at path below the store.
func (c *Checker) Errorf(path []any, format string, args ...any) {
	c.v.errorf(append(slices.Clone(c.at), path...), format, args...)
}

// Secret checks a secret reference at path below the store.
func (c *Checker) Secret(path []any, s *SecretRef) {
	c.v.checkSecret(append(slices.Clone(c.at), path...), s)
}

// OneOf reports whether s is one of set.
func OneOf(s string, set ...string) bool { return slices.Contains(set, s) }
