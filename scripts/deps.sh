#!/bin/sh
# Installs the Debian packages that building, testing and the demo need, when
# any is missing. As root it runs apt-get; otherwise it prints the command.
set -eu

packages="
  gcc make meson ninja-build pkg-config
  clang libclang-rt-14-dev
  libevent-dev libssl-dev libsodium-dev libsqlite3-dev libc-ares-dev
  libidn2-dev libcrypt-dev libcmocka-dev
  openssl ca-certificates
  python3 python3-pytest python3-aiosmtpd
  swaks libnet-ssleay-perl curl dnsmasq-base fail2ban gsasl
  passwd util-linux procps clang-format valgrind
  chromium
"

missing=""
for p in $packages; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
	exit 0
fi

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "postgate needs these Debian packages:$missing" >&2
	echo "Run as root:  apt-get update && $cmd" >&2
	exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
