// Package e2e proves Hearth from the outside: its tests build the hearth
// binary, run `hearth serve` as a child process on its own data directory,
// port, bridge and subnet, and drive it over real HTTP with the
// ElasticHosts API — a stock Debian 12 booted as a real server (login over
// VNC, systemd's verdict, DHCP, unprivileged ids, power from both sides,
// GPT and qcow2 images), a security matrix, fault injection (SIGKILL during
// operations, a killed containerd, a full disk, noisy guests), a load test
// and the benchmarks that compare Hearth against the tools it replaces
// (LXC for the Debian guest's login prompt).
// The package has no code outside its tests.
package e2e
