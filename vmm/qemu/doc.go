// Package qemu is what a full-VM guest (issue 14) is made of on the host:
// the QEMU command line of a VM described in ElasticHosts' terms (Command),
// and a QMP client to drive and watch the running QEMU (Client). It starts
// no process itself: the VM driver runs Command's argv with Env inside the
// VM's container, then connects to RunDir/qmp.sock. Of Hearth it imports
// only internal/ehkeys and vmm/guest (for guest.ErrInvalid).
//
// Decisions the command line embodies:
//
//   - Machine: i440fx ("-machine pc"). ide:B:U means the PC's two IDE
//     buses with two units each, which only i440fx's PIIX IDE has (q35 has
//     AHCI only). ata:0:U is a port of an added AHCI controller, scsi:0:U a
//     target of a virtio-scsi controller (QEMU's LSI emulation is
//     unmaintained and Windows x64 has no driver for it; Linux has
//     virtio_scsi everywhere), block:N a virtio-blk disk.
//   - Drives: always format=raw (a guest-written qcow2 header in a raw
//     image must never be probed as one, or it could name a host file as
//     backing). :media cdrom → ide-cd/scsi-cd (virtio-blk has no CD: a
//     read-only disk) opened readonly=on. A read-only disk (a library image,
//     a shared drive) gets snapshot=on: QEMU opens the image O_RDONLY
//     (measured in /proc/PID/fdinfo) and sends the guest's writes to a
//     temporary qcow2 layer in $TMPDIR, which Env sets to RunDir; QEMU
//     unlinks that file as soon as it opens it, so it is gone at stop even
//     after a SIGKILL. readonly=on is no choice for a disk: ide-hd refuses it
//     ("Block node is read-only") and a live system must be able to write.
//     A writable disk gets discard=unmap so the guest's TRIM thins it.
//   - Boot: the boot key's device keys become bootindex 1, 2, …; without a
//     boot key the first disk in device order (as ehkeys.BootDevice) gets
//     bootindex 1. Other drives remain bootable after those (SeaBIOS).
//   - Serial: ttyS0 is QEMU's stdio (chardev stdio, signal=off so a Ctrl-C
//     typed on the console reaches the guest instead of killing QEMU): the
//     container's console terminal is the serial console, so the console
//     stream, its 64 KiB backlog and re-adoption work as for containers.
//   - Display: -vga std, -display none, VNC on RunDir/vnc.sock without
//     authentication (only Hearth reaches the socket; Hearth checks the
//     server's password), and a USB tablet so the viewer's pointer is
//     absolute.
//   - Power: no -no-reboot (a guest's reboot resets in place, a RESET
//     event) and no -no-shutdown (a guest's poweroff ends QEMU, a SHUTDOWN
//     event first). system_powerdown is the ACPI power button: SeaBIOS
//     without an OS has no ACPI handler, so PowerDown then changes nothing
//     (QEMU emits POWERDOWN and keeps running); the caller kills QEMU after
//     its grace period.
//   - Hardening: -nodefaults -no-user-config, and QEMU's own seccomp
//     filter (-sandbox on, denying exec, privilege changes, obsolete system
//     calls and resource control).
//   - Accelerator: -accel kvm with -cpu host where the caller found
//     /dev/kvm usable, else -accel tcg with QEMU's default CPU and a
//     translation cache of TCGCacheMiB (QEMU's default, 1 GiB, would count
//     against the container's memory limit).
//
// The QMP client (Client) speaks QMP through monitor, a qmp.Monitor of
// go-qemu's interface and types written here because go-qemu's own
// qmp.SocketMonitor races (see monitor). monitor's reader blocks on an
// undelivered event, and with it every command's answer, so Client reads the
// events from the start and hands the power-state ones (SHUTDOWN, RESET,
// POWERDOWN, STOP, RESUME) to subscribers without blocking. A command
// abandoned by its context completes in the background.
//
// Measured with QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18): QEMU removes its
// QMP socket when it exits but leaves the VNC socket (and unlinks a stale one
// at the next start), so the driver removes RunDir at stop.
package qemu
