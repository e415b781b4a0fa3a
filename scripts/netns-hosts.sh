#!/usr/bin/env bash
# Several "hosts" on this machine for multi-host MPI tests: Linux network namespaces qshard-h0,
# qshard-h1, ... joined by a bridge, each with its own address and host name, and a launcher that
# Open MPI uses instead of ssh to start its daemons inside them. Ranks on different namespaces
# talk over TCP through the bridge, as ranks on different nodes do over a network. Needs root.
#
#   bash scripts/netns-hosts.sh up [N] [STATE]   # N hosts (default 2); STATE default /tmp/qshard-netns
#   bash scripts/netns-hosts.sh down [STATE]
#
#   mpirun $(cat STATE/mpirun-args) -np 4 --map-by node qshard-quantize ...
#
# `up` writes into STATE:
#   hostfile     one line per host: its address and `slots=2`
#   rsh          the launcher (Open MPI's plm_rsh_agent): `rsh ADDRESS COMMAND...` runs COMMAND
#                in that host's network namespace, in new UTS and mount namespaces (its own host
#                name, so Open MPI's per-host session folders do not collide). With
#                QSHARD_NETNS_BIND_H<i>=SRC:DST in mpirun's environment, SRC is bind-mounted over
#                DST on host i only (a file that only that host sees, for fault tests).
#   mpirun-args  the mpirun options: host file, launcher, TCP only (btl tcp,self; pml ob1), out-of-band
#                and MPI traffic restricted to the bridge's subnet
# Addresses: 10.231.77.1.. for the hosts, 10.231.77.254 for this (the root) namespace.
set -euo pipefail

action=${1:-}
prefix=qshard-h
bridge=qshard-br0
subnet=10.231.77

usage() {
  echo "usage: bash scripts/netns-hosts.sh up [N] [STATE_DIR] | down [STATE_DIR]" >&2
  exit 2
}

down() {
  local state=$1 ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$state"
  echo "netns-hosts: removed"
}

up() {
  local count=$1 state=$2 i ns
  if [[ $(id -u) -ne 0 ]]; then
    echo "netns-hosts: must run as root (it creates network namespaces)" >&2
    exit 1
  fi
  for tool in ip unshare mpirun; do
    command -v "$tool" > /dev/null || {
      echo "netns-hosts: $tool not found" >&2
      exit 1
    }
  done
  down "$state" > /dev/null
  mkdir -p "$state"
  ip link add "$bridge" type bridge
  ip addr add "$subnet.254/24" dev "$bridge"
  ip link set "$bridge" up
  : > "$state/hostfile"
  for ((i = 0; i < count; ++i)); do
    ns=$prefix$i
    ip netns add "$ns"
    ip link add "qshard-v$i" type veth peer name eth0 netns "$ns"
    ip link set "qshard-v$i" master "$bridge" up
    ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    echo "$subnet.$((i + 1)) slots=2" >> "$state/hostfile"
  done
  # The launcher: like ssh, it joins its arguments into one command line for a shell there.
  cat > "$state/rsh" << 'EOF'
#!/usr/bin/env bash
# Written by scripts/netns-hosts.sh: Open MPI's launcher into the qshard-h<i> network namespaces.
set -euo pipefail
host=$1
shift
index=$((${host##*.} - 1))
ns=qshard-h$index
bind_var=QSHARD_NETNS_BIND_H$index
setup="hostname $ns"
if [[ -n ${!bind_var:-} ]]; then
  setup+="; mount --bind ${!bind_var%%:*} ${!bind_var#*:}"
fi
exec ip netns exec "$ns" unshare --uts --mount sh -c "$setup; $*"
EOF
  chmod +x "$state/rsh"
  echo "--hostfile $state/hostfile --mca plm_rsh_agent $state/rsh --mca plm_rsh_no_tree_spawn 1" \
    "--mca btl tcp,self --mca pml ob1 --mca oob_tcp_if_include $subnet.0/24" \
    "--mca btl_tcp_if_include $subnet.0/24" > "$state/mpirun-args"
  echo "netns-hosts: $count hosts up ($subnet.1..$count); mpirun options in $state/mpirun-args"
}

case $action in
  up) up "${2:-2}" "${3:-${QSHARD_NETNS_DIR:-/tmp/qshard-netns}}" ;;
  down) down "${2:-${QSHARD_NETNS_DIR:-/tmp/qshard-netns}}" ;;
  *) usage ;;
esac
