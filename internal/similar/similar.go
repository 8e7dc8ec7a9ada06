// Package similar measures how far apart two names are, for "did you
// mean" suggestions: the topology loader's unknown references and the
// CLI's nearest paths.
package similar

import "slices"

// Edits is the number of edits (insert, delete, replace, or swap two
// neighbouring characters, as typing mistakes go) that turn a into b.
func Edits(a, b string) int { return distance(a, b, false) }

// EditsWithin is the fewest edits that turn q into some part of c: c's
// leading and trailing characters cost nothing (0 when c contains q).
func EditsWithin(q, c string) int { return distance(q, c, true) }

func distance(a, b string, freeEnds bool) int {
	rows := [3][]int{make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)}
	for j := range rows[1] {
		if !freeEnds {
			rows[1][j] = j
		}
	}
	for i := 1; i <= len(a); i++ {
		pp, prev, cur := rows[0], rows[1], rows[2]
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		rows[0], rows[1], rows[2] = prev, cur, pp
	}
	if freeEnds {
		return slices.Min(rows[1])
	}
	return rows[1][len(b)]
}
