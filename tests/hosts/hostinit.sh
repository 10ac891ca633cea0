#!/bin/sh
# PID 1 of one test host (run by testhosts.py inside `unshare --mount --uts --pid --fork`, in the host's
# network namespace): a hostname, private Valkey and root directories, a fresh /run, then sshd in the foreground.
# Usage: hostinit.sh NAME HOST_DIR
set -eu
H=$1
D=$2
hostname "$H"
for pair in etc-valkey:/etc/valkey var-lib-valkey:/var/lib/valkey var-log-valkey:/var/log/valkey root:/root; do
    mount --bind "$D/${pair%%:*}" "${pair#*:}"
done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -m 0755 /run/sshd
mkdir -m 1777 /run/lock
exec /usr/sbin/sshd -D -e -f "$D/sshd_config"
