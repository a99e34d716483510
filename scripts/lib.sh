# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the scripts in this directory: package installation and the build.

# The Debian packages virtform builds and runs with.
BUILD_PACKAGES="gcc meson ninja-build pkg-config libyaml-dev libxml2-dev libnl-3-dev libnl-route-3-dev
  libudev-dev libsqlite3-dev libvirt-dev nettle-dev libisofs-dev libcurl4-openssl-dev scdoc"
# What the test suite needs beyond that: cmocka, ip(8) for network namespaces,
# valgrind, and a real hypervisor: libvirtd (which also creates the libvirt-qemu
# user the embedded QEMU driver needs) and QEMU, run under TCG. libvirtd's
# network driver (in libvirt-daemon on Debian 12) needs iptables to start a
# network; the tests' networks have no address, so no dnsmasq. qemu-img
# (qemu-utils) makes base images, xorriso reads cloud-init seeds back.
TEST_PACKAGES="libcmocka-dev iproute2 valgrind libvirt-daemon-system iptables qemu-system-x86 qemu-utils xorriso"

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Installs what is missing, quietly; does nothing when everything is there.
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "virtform: missing packages: ${missing[*]}; run this as root or install them" >&2
        return 1
    fi
    echo "virtform: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures and builds a build directory: build_dir NAME [MESON OPTIONS...]
# An existing directory is configured again with the options given, so that
# an option (-Dwerror, a sanitizer) is never silently what an older run left.
# Quiet while it works; on failure it prints what the build said.
build_dir() {
    local dir="$top/$1"; shift
    local log
    if [ ! -f "$dir/build.ninja" ]; then
        log=$(meson setup "$dir" "$top" "$@" 2>&1) || { echo "$log" >&2; return 1; }
    elif [ $# -gt 0 ]; then
        log=$(meson configure "$dir" "$@" 2>&1) || { echo "$log" >&2; return 1; }
    fi
    log=$(ninja -C "$dir" 2>&1) || { echo "$log" >&2; return 1; }
}
