#!/usr/bin/env bash
# The system packages the tests need: openssl, Prometheus (promtool and the server), BIND (DNS-01),
# Docker and debootstrap (the operator image). Installs what is missing with apt (as root), else says
# what to install. Pebble is built from its Go module (make test-suite).
set -euo pipefail
needed=()
command -v openssl >/dev/null || needed+=(openssl)
command -v promtool >/dev/null || needed+=(prometheus)
[ -x /usr/sbin/named ] || command -v named >/dev/null || needed+=(bind9)
command -v dockerd >/dev/null || needed+=(docker.io)
command -v debootstrap >/dev/null || needed+=(debootstrap)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "the tests need: ${needed[*]} (Debian: sudo apt-get install ${needed[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
