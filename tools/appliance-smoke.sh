#!/bin/sh
# Builds the appliance image as `./task image` does and boots it, on a machine
# that cannot reach cloud.debian.org or GitHub, or has no usable KVM:
#   * a Debian 12 base made with debootstrap (kernel, cloud-init, sshd, sudo,
#     extlinux) stands in for the Debian cloud image;
#   * a stub tarball (two scripts in /opt/kata/bin) stands in for Kata's
#     release, served to the build VM over HTTP and checked by its SHA-256;
#   * the VMs run under TCG unless SMOKE_ACCEL=kvm.
# Then it boots the image and checks the console banner, HTTPS /health, the
# plain-HTTP redirect and the banner's credentials. Needs root, bin/hearth,
# Debian's mirror, and debootstrap, qemu-system-x86, qemu-utils, extlinux.
# SMOKE_KEEP=1 keeps the work directory (images, serial log).
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
accel=${SMOKE_ACCEL:-tcg}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/hearth-smoke.XXXXXX)
pids=""
cleanup() {
	for pid in $pids; do kill "$pid" 2>/dev/null || true; done
	[ -f "$work/vm.pid" ] && kill "$(cat "$work/vm.pid")" 2>/dev/null || true
	mountpoint -q "$work/root" && umount -R "$work/root" || true
	if [ "${SMOKE_KEEP:-}" = 1 ]; then echo "smoke: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
say() { echo "smoke: $*"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
# serve DIR: starts an HTTP server for DIR on a free loopback port and sets
# served_port.
serve() {
	python3 -c 'import http.server, socketserver, sys, os
os.chdir(sys.argv[1])
s = socketserver.TCPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
print(s.server_address[1], flush=True)
s.serve_forever()' "$1" >"$work/port" 2>/dev/null &
	pids="$pids $!"
	while [ ! -s "$work/port" ]; do sleep 0.1; done
	served_port=$(cat "$work/port")
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[ -x bin/hearth ] || fail "bin/hearth is missing: run ./task build"

say "base image (debootstrap of bookworm from $mirror)"
truncate -s 4G "$work/base.raw"
# extlinux boots a partitionless ext4 disk; it reads neither 64bit nor metadata_csum.
mkfs.ext4 -q -F -L root -O ^64bit,^metadata_csum "$work/base.raw"
mkdir "$work/root"
mount -o loop "$work/base.raw" "$work/root"
debootstrap --include=linux-image-amd64,openssh-server,sudo,ifupdown,isc-dhcp-client,curl,ca-certificates,iproute2 \
	bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || fail "debootstrap (see $work/debootstrap.log)"
mount -t proc proc "$work/root/proc"
mount --rbind /dev "$work/root/dev"
# cloud-init separately: debootstrap does not resolve its virtual dependencies.
chroot "$work/root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	cloud-init python3-cffi-backend >"$work/chroot-apt.log" 2>&1 || fail "cloud-init in the base (see $work/chroot-apt.log)"
chroot "$work/root" apt-get clean
umount "$work/root/proc"
umount -R "$work/root/dev"
echo 'LABEL=root / ext4 errors=remount-ro 0 1' >"$work/root/etc/fstab"
printf 'source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n' >"$work/root/etc/network/interfaces"
mkdir -p "$work/root/boot/extlinux"
extlinux --install "$work/root/boot/extlinux" >/dev/null 2>&1
kernel=$(cd "$work/root/boot" && ls vmlinuz-* | head -1)
initrd=$(cd "$work/root/boot" && ls initrd.img-* | head -1)
printf 'DEFAULT debian\nTIMEOUT 1\nLABEL debian\n  LINUX /boot/%s\n  INITRD /boot/%s\n  APPEND root=LABEL=root ro console=tty0 console=ttyS0,115200n8\n' \
	"$kernel" "$initrd" >"$work/root/boot/extlinux/extlinux.conf"
umount "$work/root"
qemu-img convert -O qcow2 "$work/base.raw" "$work/base.qcow2"
rm "$work/base.raw"
base_sum=$(sha256sum "$work/base.qcow2" | cut -d' ' -f1)

say "stand-in Kata release"
mkdir -p "$work/kata/opt/kata/bin" "$work/www"
for cmd in containerd-shim-kata-v2 kata-runtime; do
	printf '#!/bin/sh\necho "stand-in for Kata (appliance smoke test)" >&2\nexit 1\n' >"$work/kata/opt/kata/bin/$cmd"
	chmod +x "$work/kata/opt/kata/bin/$cmd"
done
tar -C "$work/kata" -cJf "$work/www/kata-standin.tar.xz" opt
kata_sum=$(sha256sum "$work/www/kata-standin.tar.xz" | cut -d' ' -f1)
serve "$work/www"

say "packer build (accelerator $accel)"
packer build -var accelerator="$accel" -var debian_image_url="$work/base.qcow2" \
	-var debian_image_checksum="sha256:$base_sum" \
	-var kata_url="http://10.0.2.2:$served_port/kata-standin.tar.xz" -var kata_sha256="$kata_sum" \
	-var disk_size=6G -var output_directory="$work/image" appliance.pkr.hcl >"$work/packer.log" 2>&1 ||
	fail "packer build (see $work/packer.log)"
image="$work/image/hearth.qcow2"
[ -f "$image" ] || fail "no $image"

say "boot"
https_port=$(free_port)
qemu-img create -q -f qcow2 -b "$image" -F qcow2 "$work/boot.qcow2"
qemu-system-x86_64 -accel "$accel" -m 2048 -smp 2 -drive "file=$work/boot.qcow2,if=virtio" \
	-nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$https_port-:443" \
	-serial "file:$work/serial.log" -display none -daemonize -pidfile "$work/vm.pid"
for _ in $(seq 600); do
	grep -aq '^---- end of Hearth ----' "$work/serial.log" 2>/dev/null && break
	sleep 1
done
grep -aq '^---- end of Hearth ----' "$work/serial.log" || fail "no Hearth banner on the console within 10 minutes (see $work/serial.log)"
user=$(sed -n 's/^  login (user name or id): admin  or  \([0-9a-f-]*\).*/\1/p' "$work/serial.log" | tail -1 | tr -d '\r')
secret=$(sed -n 's/^  secret key: *\([0-9A-Za-z_-]*\).*/\1/p' "$work/serial.log" | tail -1 | tr -d '\r')
address=$(sed -n 's/^Hearth dashboard and API: \(.*\)/\1/p' "$work/serial.log" | tail -1 | tr -d '\r')
[ -n "$user" ] && [ -n "$secret" ] || fail "banner without credentials (see $work/serial.log)"
say "banner: dashboard $address, admin $user"

health=""
for _ in $(seq 120); do
	health=$(curl -fsSk --max-time 5 "https://127.0.0.1:$https_port/health" 2>/dev/null) && break
	sleep 1
done
echo "$health" | grep -qx 'status ok' || fail "/health over HTTPS answered: $health"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$https_port/health")
[ "$code" = 308 ] || fail "plain HTTP got $code, want 308"
for login in "$user" admin; do
	code=$(curl -sk -o /dev/null -w '%{http_code}' -u "$login:$secret" "https://127.0.0.1:$https_port/servers/list")
	[ "$code" = 200 ] || fail "/servers/list as $login got $code"
done
code=$(curl -sk -o /dev/null -w '%{http_code}' -u "admin:wrong$secret" "https://127.0.0.1:$https_port/servers/list")
[ "$code" = 401 ] || fail "/servers/list with a wrong secret got $code, want 401"
say "PASS: image built, booted, banner shown, HTTPS /health ok, plain HTTP redirected, banner credentials accepted"
