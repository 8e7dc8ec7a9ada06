package hop

import "strings"

// TraceIDDetail is the detail key of the trace id a request carried.
const TraceIDDetail = "trace_id"

// HeaderDetail is the detail key under which a response header is kept
// as evidence: "header.via" for Via.
func HeaderDetail(name string) string { return "header." + strings.ToLower(name) }
