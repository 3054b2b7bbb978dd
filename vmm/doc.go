// Package vmm runs the servers of a storage.Store as guests. The Manager is
// the server state machine web/api drives (its Guests and ConsoleLog): claims
// and leases, the persistent and dead rules, shutdown with a grace period
// and kill, reset, pause, live changes (Set), reconciling the database with
// the guests after a restart, and what a running server looks like now
// (Observe, rendered by web/api as the ElasticHosts runtime keys).
//
// The guests themselves run on a Backend, the hypervisor seam: vmm/containerd
// is the one Hearth ships (runc containers, or Kata VMs where the host has
// KVM); vmm/vmmtest has an in-memory one for tests that need no root. The
// vocabulary both sides speak — guest.Spec, guest.Status, guest.Exit,
// counters, the console stream and the sentinel errors — is package
// vmm/guest, so a backend imports neither vmm nor storage.
//
// Files: manager.go (type, options, locks), backend.go (the Backend
// interface and the error names callers use), guestspec.go (a server's
// configuration → guest.Spec), lifecycle.go (start, stop, destroy, reset,
// pause, resume), shutdown.go (power-off with the signal the guest's init
// understands, and the grace period), exits.go (a guest's exit: powered off,
// rebooted, or died), set.go (live changes), reconcile.go (after a
// restart), observe.go (Observation), console.go (consoles, and the last
// output of a guest that ended).
package vmm
