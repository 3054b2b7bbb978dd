package api

import (
	"context"

	"hearth/storage"
)

// ServerCounters are a server's cumulative counters as numbers — its NICs'
// traffic and its drives' I/O summed, its CPU time and memory in use — for
// the dashboard's graphs, which would otherwise parse them back out of the
// runtime keys.
type ServerCounters struct {
	Server                                  string
	Active                                  bool // status active (a paused or stopped server's graphs restart)
	RxBytes, TxBytes, ReadBytes, WriteBytes uint64
	CPUNanos, MemoryBytes                   uint64
	UsageKnown                              bool // CPUNanos and MemoryBytes were reported
}

// ServersCounters returns the counters of every server the caller sees.
func (s *Service) ServersCounters(ctx context.Context, c Caller) ([]ServerCounters, error) {
	list, err := s.visibleServers(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]ServerCounters, len(list))
	for i, srv := range list {
		out[i] = s.counters(ctx, srv)
	}
	return out, nil
}

// ServerCounters returns one server's counters.
func (s *Service) ServerCounters(ctx context.Context, c Caller, id string) (ServerCounters, error) {
	srv, err := s.server(ctx, c, id)
	if err != nil {
		return ServerCounters{}, err
	}
	return s.counters(ctx, srv), nil
}

func (s *Service) counters(ctx context.Context, srv storage.Server) ServerCounters {
	sc := ServerCounters{Server: srv.ID, Active: srv.Status == storage.StatusActive}
	if !storage.Running(srv.Status) || s.guests == nil {
		return sc
	}
	o, ok := s.guests.Observe(ctx, srv.ID)
	if !ok {
		return sc
	}
	for _, n := range o.NICs {
		if n.Counters != nil {
			sc.RxBytes += n.Counters.RxBytes
			sc.TxBytes += n.Counters.TxBytes
		}
	}
	for _, d := range o.Disks {
		sc.ReadBytes += d.ReadBytes
		sc.WriteBytes += d.WriteBytes
	}
	if o.Usage != nil {
		sc.CPUNanos, sc.MemoryBytes, sc.UsageKnown = o.Usage.CPUNanos, o.Usage.MemoryBytes, true
	}
	return sc
}
