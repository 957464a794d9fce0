#!/bin/sh
# The last step of both image builds (scripts/build-image.mjs and the Dockerfile), run as root inside
# the image's root filesystem once the packages, Node.js and /opt/wirelane are in place.
set -eu

# iptables-wrapper picks the host's backend on the first call (see the script). It outranks both
# Debian alternatives (nft 20, legacy 10) until it sets one of them.
for family in iptables ip6tables; do
  update-alternatives --quiet --install "/usr/sbin/$family" "$family" /usr/sbin/iptables-wrapper 100 \
    --slave "/usr/sbin/$family-restore" "$family-restore" /usr/sbin/iptables-wrapper \
    --slave "/usr/sbin/$family-save" "$family-save" /usr/sbin/iptables-wrapper
done

ln -sf /opt/wirelane/bin/wirelane.js /usr/local/bin/wirelane
