package similar

import "testing"

func TestEdits(t *testing.T) {
	for _, tc := range []struct {
		a, b         string
		edits, under int
	}{
		{"cache", "cache", 0, 0},
		{"cahce", "cache", 1, 1},    // a swap is one edit
		{"futurs", "futures", 1, 1}, // one left out
		{"futures/ws", "api.allinpro.com/futures/ws*", 18, 0},
		{"", "abc", 3, 0},
		{"abc", "", 3, 3},
	} {
		if got := Edits(tc.a, tc.b); got != tc.edits {
			t.Errorf("Edits(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.edits)
		}
		if got := EditsWithin(tc.a, tc.b); got != tc.under {
			t.Errorf("EditsWithin(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.under)
		}
	}
}
