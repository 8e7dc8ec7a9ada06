package config

import (
	"regexp"
	"strconv"
)

// ServiceRef is where a route goes: a Service and one of its ports,
// written "namespace/name:port" and parsed once, when the file loads.
type ServiceRef struct {
	Namespace, Name string
	Port            int
}

// Key is the Service as namespace/name.
func (r ServiceRef) Key() string { return r.Namespace + "/" + r.Name }

func (r ServiceRef) String() string { return r.Key() + ":" + strconv.Itoa(r.Port) }

var serviceRefRe = regexp.MustCompile(`^([a-z0-9-]+)/([a-z0-9.-]+):(\d+)$`)

// ParseServiceRef reads "namespace/name:port".
func ParseServiceRef(ref string) (ServiceRef, bool) {
	m := serviceRefRe.FindStringSubmatch(ref)
	if m == nil {
		return ServiceRef{}, false
	}
	port, err := strconv.Atoi(m[3])
	if err != nil {
		return ServiceRef{}, false
	}
	return ServiceRef{Namespace: m[1], Name: m[2], Port: port}, true
}
