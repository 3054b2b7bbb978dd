// Package vmm runs guests: it supervises containerd, picks the runtime (Kata
// Containers where the host has KVM, runc where it has not), turns a server's
// configuration into a container with a block-device root, and reports the
// guests' exits, counters and console streams.
//
// It has two layers:
//
//   - Host is the host layer and needs no database. Open connects to
//     containerd (or starts and supervises a private one under
//     DATA/containerd) and re-adopts the guests an earlier Hearth left
//     running. Start, Signal, Kill, Pause, Resume, SetCPU and Delete drive one
//     guest, described by a GuestSpec. Console, Counters and Usage observe it.
//     OnExit reports exits from containerd's events.
//   - Manager runs the servers of a storage.Store on a Host. It implements
//     web/api's Guests (and ConsoleLog): claims, leases, the persistent and
//     dead rules, shutdown with a grace period, and reconciling the database
//     with the guests at start.
//
// Runtimes are drivers behind the Runtime interface, one file each
// (runtime_runc.go, runtime_kata.go), probed once per process by
// RuntimeStatus.
package vmm
