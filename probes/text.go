package probes

import "github.com/allinx/hopprobe/hop"

// redactWindow is how much of a message Redact reads: secrets are
// scrubbed before cutting, and anything past this could never reach the
// operator anyway.
const redactWindow = 64 << 10

// scrub makes text from a probe safe to show: secrets first (on the
// whole of what could be shown), then the bounds of Clean.
func scrub(s string, t *hop.Target, max int) string {
	if len(s) > redactWindow {
		s = s[:redactWindow]
	}
	return hop.Clean(Redact(s, t), max)
}
