package hop

import "sync"

// Spec is what every part may know of a kind without linking its
// driver: how a hop of the kind is described to people, and which
// details of its evidence mark a change worth an event when they differ
// between two walks. The probes registry holds one for each kind and
// hands them over with probes.RegisterKinds.
type Spec struct {
	// Describe names a hop's target as the status and the CLI show it;
	// nil shows the address.
	Describe func(*Target) string
	// Changes are the evidence details of the kind whose change between
	// two walks is an event (a new leader, another role).
	Changes []Change
}

// Change is an evidence detail whose change is an event of that name.
type Change struct {
	Name   string // the event's change kind: certificate, dns_answer, leader, role, pop
	Detail string // the detail it reads
}

var (
	specsMu sync.RWMutex
	specs   = map[Kind]Spec{}
)

// Register records kind's spec; called by probes.RegisterKinds.
func Register(kind Kind, s Spec) {
	specsMu.Lock()
	defer specsMu.Unlock()
	specs[kind] = s
}

func specOf(kind Kind) Spec {
	specsMu.RLock()
	defer specsMu.RUnlock()
	return specs[kind]
}

// Describe names t, a target of kind, for people: the kind's own words,
// or the address.
func Describe(kind Kind, t *Target) string {
	if d := specOf(kind).Describe; d != nil {
		return d(t)
	}
	return t.Address
}

// ChangesOf are the evidence changes that kind's hops can show; the
// slice is shared, not to be changed.
func ChangesOf(kind Kind) []Change { return specOf(kind).Changes }
