#!/bin/sh
# Ignition's fetch-offline stage writes /run/ignition/neednet when the config
# has remote resources (http/https sources); the distro brings the network
# up before the fetch stage. Flatcar's initramfs runs DHCP on every link;
# so does this (dhclient, one attempt per link, in parallel). "stop" ends
# the clients, removes their addresses and takes every link down before the
# switch to the real root (as Fedora CoreOS's coreos-teardown-initramfs
# does): udev renames only links that are down, so a link left up keeps its
# initramfs name (enp0s2) and the config's .link files (MAC → eth0) and the
# .network files that match those names never apply.
set -u
case ${1:-start} in
start)
    for dev in /sys/class/net/*; do
        i=${dev##*/}
        [ "$i" = lo ] && continue
        ip link set "$i" up
        dhclient -4 -1 -sf /usr/sbin/flatcar-dhcp-script \
            -pf "/run/dhclient.$i.pid" -lf "/run/dhclient.$i.leases" "$i" &
    done
    wait
    if ip -4 -o addr show scope global | grep -q inet; then
        echo "flatcar-ignition-neednet: $(ip -4 -o addr show scope global | awk '{print $2, $4}' | tr '\n' ' ')" > /dev/console
        exit 0
    fi
    echo "flatcar-ignition-neednet: no DHCP lease on any link" > /dev/console
    exit 1
    ;;
stop)
    for pid in /run/dhclient.*.pid; do
        [ -e "$pid" ] || continue
        kill "$(cat "$pid")" 2>/dev/null
        i=${pid#/run/dhclient.}; i=${i%.pid}
        ip -4 addr flush dev "$i" scope global
        ip route flush dev "$i" 2>/dev/null
        rm -f "$pid"
    done
    for dev in /sys/class/net/*; do
        i=${dev##*/}
        [ "$i" = lo ] && continue
        ip link set "$i" down
    done
    rm -f /etc/resolv.conf
    ;;
esac
exit 0
