package config

import (
	"path/filepath"
)

// defaultVantages gives a topology that names none the three known
// ones. It runs before validation, which reads them.
func (c *Config) defaultVantages() {
	if len(c.Vantages) == 0 {
		c.Vantages = map[string]Vantage{VantageExternal: {}, VantageInternal: {}, VantageCluster: {}}
	}
}

// routeEntries are the entries a route is reached through: its own, or
// the first entry of the topology.
func (c *Config) routeEntries(r *Route) []string {
	if len(r.Entries) == 0 && len(c.Entries) > 0 {
		return []string{c.Entries[0].Name}
	}
	return r.Entries
}

// applyDefaults fills what the file left out, once it is valid.
func (c *Config) applyDefaults() {
	if c.Defaults.Interval == 0 {
		c.Defaults.Interval = DefaultInterval
	}
	if c.Defaults.Timeout == 0 {
		c.Defaults.Timeout = DefaultTimeout
	}
	if c.Defaults.Concurrency == 0 {
		c.Defaults.Concurrency = DefaultConcurrency
	}
	if c.Defaults.MaxBodyBytes == 0 {
		c.Defaults.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Defaults.History == 0 {
		c.Defaults.History = DefaultHistory
	}
	if c.Defaults.Confirm.Spacing == 0 {
		c.Defaults.Confirm.Spacing = DefaultConfirmSpacing
	}
	if c.Defaults.MaxResponseBytes == 0 {
		c.Defaults.MaxResponseBytes = DefaultMaxResponseBytes
	}
	c.Metrics = c.Metrics.WithDefaults()
	if c.Vantage == "" {
		c.Vantage = VantageCluster
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Protocol == "" {
			r.Protocol = "http"
		}
		r.Entries = c.routeEntries(r)
		// Valid by now: the one parse of where the route goes.
		r.Target, _ = ParseServiceRef(r.Service)
	}
	for i := range c.Services {
		s := &c.Services[i]
		for j := range s.Ports {
			if s.Ports[j].Protocol == "" {
				s.Ports[j].Protocol = "tcp"
			}
		}
	}
}

// resolvePaths makes relative file paths relative to the topology file,
// as Prometheus does, so the prober can run from any directory.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	fixTLS := func(t *TLS) {
		if t != nil {
			abs(&t.CAFile)
			abs(&t.CertFile)
			abs(&t.KeyFile)
		}
	}
	fixSecret := func(s *SecretRef) {
		if s != nil {
			abs(&s.File)
		}
	}
	for i := range c.Entries {
		for j := range c.Entries[i].Hops {
			fixTLS(c.Entries[i].Hops[j].TLS)
		}
	}
	for i := range c.Stores {
		s := &c.Stores[i]
		fixTLS(s.TLS)
		fixSecret(s.Password)
		if s.Kafka != nil && s.Kafka.SASL != nil {
			fixSecret(s.Kafka.SASL.Password)
		}
	}
}
