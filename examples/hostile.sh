#!/bin/sh
# A hostile program: what a malicious submission would try. Each attack is
# one run: `hostile.sh NAME` tries attack NAME and says whether it worked;
# `hostile.sh` alone lists the attacks. Under the sandbox an attempt either
# fails (the kernel refuses it) or the run is killed for a security
# violation; scripts/demo runs every attack and prints the verdict of each.
# Outside the sandbox (as root) most of these attempts succeed.
list() {
cat <<'ATTACKS'
shadow     read the host's password hashes (/etc/shadow)
homes      list the host's home directories
procs      see the host's processes (pids above 99)
binary     overwrite a system binary (/usr/bin/ls)
etc        plant a file in /etc
root       reach the host's root through /proc/1/root
environ    read the container init's environment
remount    remount / read-write
mount      mount a new file system
userns     create a user namespace to regain capabilities
tcp        open a TCP connection to the host (127.0.0.1:22)
raw        open a raw socket
module     load a kernel module
disk       write 100 MiB to /tmp (the disk quota is 64 MiB)
forkbomb   keep 200 processes alive (the process limit is 64)
dmesg      read the kernel log
hostname   change the hostname
ATTACKS
}
try() {  # the attempt succeeds when the command does; else say why the kernel refused
    if err=$( ( "$@" ) 2>&1 >/dev/null ); then echo "ESCAPED"; exit 1; fi
    why=$(printf '%s\n' "$err" | grep ': ' | tail -n 1 | sed 's/^.*: //; s/^\[Errno [0-9]*\] //' | cut -c1-56)
    echo "contained (refused${why:+: $why})"
}
case "$1" in
shadow)   try cat /etc/shadow ;;
homes)    try ls /home/* /root ;;
procs)    try sh -c 'ls /proc | grep -q "^[0-9][0-9][0-9]"' ;;
binary)   try sh -c 'echo pwned > /usr/bin/ls' ;;
etc)      try sh -c 'echo x > /etc/cron.d/evil' ;;
root)     try ls /proc/1/root/etc ;;
environ)  try cat /proc/1/environ ;;
remount)  try mount -o remount,rw / ;;
mount)    try mount -t tmpfs none /tmp ;;
userns)   try unshare -U -r true ;;
# _socket, not socket: importing socket probes epoll (selectors), which strict
# does not allow, so the run would die before it reached socket().
tcp)      try python3 -c 'import _socket; _socket.socket(2, 1).connect(("127.0.0.1", 22))' ;;
raw)      try python3 -c 'import _socket; _socket.socket(2, 3, 1)' ;;
module)   try modprobe dummy ;;
disk)     try dd if=/dev/zero of=/tmp/fill bs=1M count=100 ;;
forkbomb) try sh -c 'i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done' ;;
dmesg)    try dmesg ;;
hostname) try hostname evil ;;
"")       list ;;
*)        echo "unknown attack $1" >&2; exit 2 ;;
esac
