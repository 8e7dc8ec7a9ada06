// Package replicas finds this prober's place among the replicas of its
// Deployment, so that they walk at offset phases instead of in lockstep:
// with two replicas at phases 0 and ½, every path is walked twice an
// interval, evenly spaced, and an outage is seen in half the time.
//
// A Deployment's pods have no ordinal, so each replica reads the set of
// ready replicas from the DNS records of a headless Service that selects
// them (cluster DNS lists the ready pods' IPs), sorts them, and takes its
// own IP's index. Every replica computes the same order from the same
// answer, needs no API access and no coordination, and moves as soon as
// a replica comes or goes.
package replicas

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/allinx/hopprobe/scheduler"
)

// maxReplicas bounds how many addresses an answer may list before it is
// ignored as not a replica set.
const maxReplicas = 256

// Place is self's index among addrs in sorted order and how many
// distinct addresses there are; ok is false when self is not among them
// (not ready yet, or the wrong address was given).
func Place(addrs []netip.Addr, self netip.Addr) (index, count int, ok bool) {
	sorted := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		sorted = append(sorted, a.Unmap())
	}
	slices.SortFunc(sorted, netip.Addr.Compare)
	sorted = slices.Compact(sorted)
	i, found := slices.BinarySearchFunc(sorted, self.Unmap(), netip.Addr.Compare)
	return i, len(sorted), found
}

// FromName is a phase derived from a pod's name, for replicas without a
// peer list: independent and uniform, so two replicas are rarely in
// lockstep, but not evenly spaced either.
func FromName(name string) float64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return float64(h.Sum64()%10000) / 10000
}

// Watch looks name up at once and then every period until ctx ends, and
// sets phase to index/count whenever that changes. An answer that does
// not list self (this pod not ready yet) or a failed lookup leaves the
// phase where it was; both are logged when they start and when they end,
// not at every lookup.
func Watch(ctx context.Context, r *net.Resolver, name string, self netip.Addr, every time.Duration, phase *scheduler.Phase, log *slog.Logger) {
	lastProblem := ""
	lastPlace := [2]int{-1, -1}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		index, count, err := lookup(ctx, r, name, self, every)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if err.Error() != lastProblem {
				log.Warn("cannot find this replica's phase; keeping the one it has", "replicas_dns", name, "phase", phase.Get(), "error", err)
				lastProblem = err.Error()
			}
		default:
			if lastProblem != "" {
				log.Info("replica set found again", "replicas_dns", name)
				lastProblem = ""
			}
			if p := [2]int{index, count}; p != lastPlace {
				lastPlace = p
				phase.Set(float64(index) / float64(count))
				log.Info("replica phase set", "index", index, "replicas", count, "phase", phase.Get())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func lookup(ctx context.Context, r *net.Resolver, name string, self netip.Addr, timeout time.Duration) (index, count int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return 0, 0, fmt.Errorf("looking up the replicas' Service %s: %w", name, err)
	}
	if len(addrs) > maxReplicas {
		return 0, 0, fmt.Errorf("%s lists %d addresses, more than the %d replicas a prober Deployment can have: is it the prober's own headless Service?", name, len(addrs), maxReplicas)
	}
	index, count, ok := Place(addrs, self)
	if !ok {
		return 0, 0, fmt.Errorf("%s does not list this pod's address %s yet (not ready, or --pod-ip is not the pod's IP)", name, self)
	}
	return index, count, nil
}
