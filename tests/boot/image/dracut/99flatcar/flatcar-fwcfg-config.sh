#!/bin/sh
# Flatcar's Ignition reads its QEMU config from fw_cfg key
# opt/org.flatcar-linux/config; Debian's (upstream) Ignition reads
# opt/com.coreos/config. Hand Ignition the Flatcar key's bytes unchanged
# through /usr/lib/ignition/user.ign, which Ignition's fetch-offline stage
# reads before it asks the platform (qemu) provider. Without the key,
# nothing is written and Ignition falls back to its own provider, as upstream.
set -eu
key=/sys/firmware/qemu_fw_cfg/by_name/opt/org.flatcar-linux/config
modprobe -q qemu_fw_cfg || true
if [ ! -r "$key/raw" ]; then
    echo "flatcar-fwcfg-config: no fw_cfg entry opt/org.flatcar-linux/config" > /dev/console
    exit 0
fi
mkdir -p /usr/lib/ignition
cp "$key/raw" /usr/lib/ignition/user.ign.tmp
mv /usr/lib/ignition/user.ign.tmp /usr/lib/ignition/user.ign
set -- $(sha256sum /usr/lib/ignition/user.ign)
echo "flatcar-fwcfg-config: Ignition config from fw_cfg opt/org.flatcar-linux/config ($(cat "$key/size") bytes, sha256 $1)" > /dev/console
