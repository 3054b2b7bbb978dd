// Package vmm runs guests: it supervises containerd, picks the runtime (Kata
// Containers where the host has KVM, runc where it has not), turns a server's
// configuration into a container with a block-device root, and reports the
// guests' exits, counters and console streams.
package vmm
