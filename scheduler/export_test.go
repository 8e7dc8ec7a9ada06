package scheduler

// Cached is how many hops the walker's cache holds.
func (w *Walker) Cached() int {
	w.cache.mu.Lock()
	defer w.cache.mu.Unlock()
	return len(w.cache.m)
}

// Peers is how many peers have a probe waiting or in flight.
func (w *Walker) Peers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.peers)
}
