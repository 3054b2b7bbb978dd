// Package containerd is the vmm.Backend Hearth ships: it runs guests through
// containerd, supervising a private daemon under DATA/containerd unless
// given a socket, and re-adopts the guests an earlier Hearth left running.
// A guest is an unprivileged system container (under runc; Kata's VM is the
// boundary instead): a user namespace mapping its ids to the server's own
// 65,536 host ids, its root the boot drive's root filesystem on a loop
// device, mounted idmapped by Hearth, further drives as block devices guest
// root owns, a cgroup delegated to guest root, NICs wired by a Network.
// A full VM (guest type vm, runc only) is the same kind of container with
// QEMU as its init instead of a distribution's: see vm.go.
//
// Runtimes are drivers behind the Driver interface, one file each
// (runtime_runc.go, runtime_kata.go), probed once per process by
// ProbeDrivers.
//
// Files: host.go (Open, Close, options, the guest table), adopt.go
// (re-adoption from container labels), start.go (a guest's creation, with
// its undo stack), control.go (signal, pause, resume, cpu), status.go,
// delete.go, exits.go (containerd's exit events), sweep.go (what an
// interrupted start or delete left), orphans.go (shims containerd forgot,
// and runc's state, kept per instance under DATA/run/runc), hostids.go
// (the instance's window of host ids, checked against the host's user
// namespaces),
// spec.go (the OCI spec), rootfs.go (the boot drive's root: found, grown,
// mounted idmapped), devices.go (device nodes made for guest root),
// cgroups.go (the guest's cgroup, delegated), loop.go (loop devices and
// their counters), counters.go (disk, NIC and cgroup readings), daemon.go
// (the private containerd), ctty.go (the console taken from init's session,
// for gettys), network.go (the Network interface, the guest's
// own network namespace), power.go (what the guest's init powers off on),
// runtime*.go (drivers), vm.go (a VM guest's container: QEMU's root, drives,
// /dev/kvm, memory overhead).
package containerd
