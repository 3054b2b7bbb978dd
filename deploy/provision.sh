#!/bin/sh
# Provisions the appliance image; run as root inside the build VM by
# appliance.pkr.hcl, with the repository's deploy/ files in $DEPLOY and the
# hearth binary at $HEARTH_BINARY. Variables: KATA_URL, KATA_SHA256,
# APPLIANCE_HOSTNAME.
set -eu
export DEBIAN_FRONTEND=noninteractive

fail() { echo "provision: $*" >&2; exit 1; }
case "${KATA_SHA256:-}" in
"") fail "set the Kata release checksum: -var kata_sha256=SHA256 of $KATA_URL" ;;
*[!0-9a-f]*) fail "kata_sha256 must be 64 lowercase hex digits, not $KATA_SHA256" ;;
esac
case "$APPLIANCE_HOSTNAME" in
"" | -* | *- | *[!a-z0-9-]*) fail "hostname $APPLIANCE_HOSTNAME is not a DNS label (a-z, 0-9, inner hyphens)" ;;
esac

# cloud-init may still be installing packages of its own.
cloud-init status --wait >/dev/null 2>&1 || true

echo "provision: Debian packages"
apt-get update -q
apt-get install -y -q --no-install-recommends \
	containerd runc e2fsprogs iproute2 iptables curl ca-certificates xz-utils zstd \
	qemu-utils qemu-system-x86 xfsprogs btrfs-progs apparmor
# Hearth starts and supervises its own containerd (DATA/containerd); the
# packaged service stays installed but off.
systemctl disable --now containerd.service
install -D -m 0644 "$DEPLOY/containerd-config.toml" /etc/containerd/config.toml

echo "provision: Kata Containers from $KATA_URL"
curl -fsSL --retry 3 -o /tmp/kata-static "$KATA_URL"
echo "$KATA_SHA256  /tmp/kata-static" | sha256sum -c - || fail "checksum of $KATA_URL does not match kata_sha256"
tar -C / -xf /tmp/kata-static # xz or zstd, by content; unpacks /opt/kata
rm -f /tmp/kata-static
for cmd in containerd-shim-kata-v2 kata-runtime; do
	[ -x "/opt/kata/bin/$cmd" ] || fail "the Kata release has no /opt/kata/bin/$cmd"
	ln -sf "/opt/kata/bin/$cmd" "/usr/local/bin/$cmd"
done
# Kata refuses the annotations that size each guest's VM (default_vcpus,
# default_memory) unless its configuration enables them, and the release's
# does not: add Hearth's drop-in. Kata reads config.d beside the file the
# configuration.toml symlink names, so resolve it first.
kata_conf=$(readlink -f /opt/kata/share/defaults/kata-containers/configuration.toml)
[ -f "$kata_conf" ] || fail "the Kata release has no /opt/kata/share/defaults/kata-containers/configuration.toml"
install -D -m 0644 "$DEPLOY/kata-hearth.toml" "$(dirname "$kata_conf")/config.d/50-hearth.toml"
install -m 0644 "$DEPLOY/modules-load.conf" /etc/modules-load.d/hearth.conf

echo "provision: Hearth"
install -m 0755 "$HEARTH_BINARY" /usr/local/bin/hearth
/usr/local/bin/hearth version
install -d -m 0755 /usr/local/lib/hearth
install -m 0755 "$DEPLOY/hearth-firstboot" /usr/local/lib/hearth/
install -m 0644 "$DEPLOY/hearth.service" "$DEPLOY/hearth-firstboot.service" "$DEPLOY/hearth-banner.path" /etc/systemd/system/
install -m 0644 "$DEPLOY/default-hearth" /etc/default/hearth
systemctl enable hearth.service hearth-firstboot.service hearth-banner.path

echo "provision: hostname $APPLIANCE_HOSTNAME"
echo "$APPLIANCE_HOSTNAME" >/etc/hostname
sed -i "/^127\.0\.1\.1[[:space:]]/d" /etc/hosts
echo "127.0.1.1	$APPLIANCE_HOSTNAME" >>/etc/hosts
# cloud-init stays for clouds that pass SSH keys, but leaves the host name
# and the network alone: the interface the build VM had is not the host's.
cat >/etc/cloud/cloud.cfg.d/90-hearth.cfg <<'CFG'
preserve_hostname: true
manage_etc_hosts: false
network:
  config: disabled
CFG

echo "provision: network (systemd-networkd, DHCP on every Ethernet port)"
install -m 0644 "$DEPLOY/uplink.network" /etc/systemd/network/80-hearth-uplink.network
install -D -m 0644 "$DEPLOY/wait-online.conf" /etc/systemd/system/systemd-networkd-wait-online.service.d/hearth.conf
rm -f /etc/network/interfaces.d/50-cloud-init /etc/network/interfaces.d/50-cloud-init.cfg
systemctl enable systemd-networkd.service
# Last, since it takes over /etc/resolv.conf: names resolve through networkd's DHCP.
apt-get install -y -q --no-install-recommends systemd-resolved
systemctl enable systemd-resolved.service

apt-get clean
rm -rf /var/lib/apt/lists/* "$DEPLOY" "$HEARTH_BINARY"
