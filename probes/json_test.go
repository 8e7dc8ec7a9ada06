package probes

import (
	"strings"
	"testing"
)

// What a JSON body costs the check is bounded by the body, not by what it
// would decode to: a 1 MiB array of a quarter million elements allocates
// a small fraction of what decoding it into []any did, and nesting past
// maxJSONDepth is refused instead of recursed into.
func TestCheckingJSONBuildsNothingFromTheBody(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"status":"ok","items":[`)
	for b.Len() < 1<<20 {
		b.WriteString(`0,`)
	}
	b.WriteString(`0]}`)
	body := []byte(b.String())
	var err error
	grew := allocatedBy(func() { err = checkJSON(body, map[string]string{"status": "ok"}) })
	if err != nil {
		t.Fatal(err)
	}
	// Decoded into []any the array took about 43 bytes of heap per body
	// byte, all of it alive at once; skipped, it is copied about once
	// (the decoder's buffer grows to hold it).
	if perByte := float64(grew) / float64(len(body)); perByte > 8 {
		t.Errorf("checking %d bytes of JSON allocated %.1f bytes per body byte", len(body), perByte)
	} else {
		t.Logf("%.1f bytes allocated per body byte", perByte)
	}
	// Deep nesting off the paths is encoding/json's scanner's to refuse
	// (at 10,000 levels, iteratively); along a path, at 64.
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	if err := checkJSON([]byte(deep), map[string]string{"a": "b"}); err == nil || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Errorf("100,000 levels of nesting: %v", err)
	}
	along := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	if err := checkJSON([]byte(along), map[string]string{strings.TrimSuffix(strings.Repeat("a.", 100), "."): "1"}); err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("100 levels along the path: %v", err)
	}
	for body, want := range map[string]string{
		`{"data":{"role":"primary"}}`:            "",
		`{"data":{"role":"replica"}}`:            `JSON field data.role is "replica", want "primary"`,
		`{"data":[{"role":"primary"}]}`:          "JSON field data.role is missing",
		`{"data":{"role":"primary"}} trailing`:   "body is not JSON",
		`{"data":{"role":"primary"`:              "body is not JSON",
		`{"data":{"role":"x","role":"primary"}}`: "",
	} {
		err := checkJSON([]byte(body), map[string]string{"data.role": "primary"})
		if (want == "" && err != nil) || (want != "" && (err == nil || !strings.Contains(err.Error(), want))) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
