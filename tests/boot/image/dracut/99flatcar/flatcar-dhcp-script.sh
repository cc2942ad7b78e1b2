#!/bin/sh
# Minimal dhclient script for the initramfs: apply the lease (address,
# default route, DNS), nothing else.
prefix() {
    n=0
    for o in $(echo "$1" | tr . ' '); do
        case $o in 255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;; 248) n=$((n + 5)) ;;
                   240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;; 192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;; esac
    done
    echo $n
}
case $reason in
BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr replace "$new_ip_address/$(prefix "$new_subnet_mask")" dev "$interface"
    for r in ${new_routers:-}; do ip -4 route replace default via "$r" dev "$interface"; break; done
    if [ -n "${new_domain_name_servers:-}" ]; then
        for s in $new_domain_name_servers; do echo "nameserver $s"; done > /etc/resolv.conf
    fi
    ;;
EXPIRE|FAIL|RELEASE|STOP)
    [ -n "${old_ip_address:-}" ] && ip -4 addr del "$old_ip_address/$(prefix "$old_subnet_mask")" dev "$interface"
    ;;
esac
exit 0
