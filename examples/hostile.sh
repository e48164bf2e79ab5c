#!/bin/sh
# A hostile program: it tries what a malicious submission would try, and says
# for each attempt whether the sandbox contained it. Run it with
#   .venv/bin/sandbox exec --profile strict -- examples/hostile.sh
# Outside the sandbox (as root) most of these attempts succeed.
contained=0; escaped=0
try() {  # try "what" command... : the attempt succeeds when the command does
    what=$1; shift
    if ( "$@" ) >/dev/null 2>&1; then
        echo "ESCAPED    $what"; escaped=$((escaped + 1))
    else
        echo "contained  $what"; contained=$((contained + 1))
    fi
}
echo "I am $(id -un) (uid $(id -u)) on $(hostname), pid $$"

try "read the host's password hashes (/etc/shadow)"      cat /etc/shadow
try "list the host's home directories"                    ls /home/* /root
try "see the host's processes (pids above 99)"            sh -c 'ls /proc | grep -q "^[0-9][0-9][0-9]"'
try "overwrite a system binary"                           sh -c 'echo pwned > /usr/bin/ls'
try "plant a file in /etc"                                sh -c 'echo x > /etc/cron.d/evil'
try "reach the host's root through /proc/1/root"          ls /proc/1/root/etc
try "read init's environment"                             cat /proc/1/environ
try "remount / read-write"                                mount -o remount,rw /
try "mount a new file system"                             mount -t tmpfs none /tmp
try "create a user namespace to regain capabilities"      unshare -U -r true
try "open a TCP connection (network namespace)"           python3 -c 'import socket; socket.create_connection(("127.0.0.1", 22), 1)'
try "raw socket"                                          python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'
try "load a kernel module"                                modprobe dummy
try "write 100 MiB to /tmp (disk quota is 64 MiB)"       dd if=/dev/zero of=/tmp/fill bs=1M count=100
try "keep 200 processes alive (process limit 64)"         sh -c 'i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done'
try "read a kernel log (syslog)"                          dmesg
try "change the hostname"                                 hostname evil
echo
echo "$contained attempts contained, $escaped escaped"
[ "$escaped" -eq 0 ]
