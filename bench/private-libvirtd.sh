# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by bench/operator-checks and bench/safety-libvirtd, inside the mount
# namespace of their own that `unshare --mount` gives them: a libvirtd and a
# virtlogd whose directories are under $1, and a stop that leaves no guest,
# daemon or mount behind, whether the checks ran to the end or failed.

private_libvirtd_start() {
    local dir=$1 d
    mount --make-rprivate /
    for d in /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
        mkdir -p "$dir/root$d"; mount --bind "$dir/root$d" "$d"
    done
    printf 'unix_sock_dir = "/run/libvirt"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\nlisten_tls = 0\nlisten_tcp = 0\n' \
        > /etc/libvirt/libvirtd.conf
    echo 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"' > /etc/libvirt/virtlogd.conf
    trap private_libvirtd_stop EXIT
    /usr/sbin/virtlogd -f /etc/libvirt/virtlogd.conf -p /run/libvirt/virtlogd.pid -d
    /usr/sbin/libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid -d
    for _ in $(seq 100); do [ -S /run/libvirt/libvirt-sock ] && return 0; sleep 0.1; done
    echo "libvirtd did not make its socket; see $dir/root/var/log/libvirt" >&2
    return 1
}

# What the checks left running in the background (a virtform daemon, a virsh event), every guest
# (libvirtd's death would leave their QEMU running), then the daemons, each waited for.
private_libvirtd_stop() {
    local name pid pids=()
    # Every step, whatever the one before it did: under the caller's `set -e`, the wait for a job the
    # checks had killed already (status 143) ended this trap there, guests and daemons left running.
    set +e
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    for name in $(virsh -c qemu:///system list --name 2>/dev/null); do
        virsh -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
    done
    for name in libvirtd virtlogd; do  # a pid file has no newline: one at a time
        pid=$(cat "/run/libvirt/$name.pid" 2>/dev/null) && kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
}
