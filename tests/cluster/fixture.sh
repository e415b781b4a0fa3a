#!/usr/bin/env bash
# CTest fixture of the cluster tests: starts or stops the local Slurm cluster
# (scripts/slurm-local.sh) or the network-namespace hosts (scripts/netns-hosts.sh) in STATE.
#
#   bash tests/cluster/fixture.sh slurm|netns start|stop STATE
#
# Where they cannot exist (not root, or the Debian packages missing: scripts/test.sh installs
# them) `start` writes the reason to STATE/unavailable and succeeds, and the tests skip with that
# reason. Where they should work but do not start, `start` fails, and so do the tests.
set -euo pipefail
kind=$1 action=$2 state=$3
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

unavailable() {
  mkdir -p "$state"
  echo "$*" > "$state/unavailable"
  echo "cluster fixture: $kind: $*"
  exit 0
}

case $kind in
  slurm) tools=(munged slurmctld slurmd sbatch) script=(bash "$source_dir/scripts/slurm-local.sh") ;;
  netns) tools=(ip unshare mpirun) script=(bash "$source_dir/scripts/netns-hosts.sh") ;;
  *) echo "usage: fixture.sh slurm|netns start|stop STATE" >&2 && exit 2 ;;
esac

if [[ $action == stop ]]; then
  [[ -f $state/unavailable ]] && rm -rf "$state" && exit 0
  if [[ $kind == slurm ]]; then "${script[@]}" stop "$state"; else "${script[@]}" down "$state"; fi
  exit 0
fi

rm -rf "$state"
[[ $(id -u) -eq 0 ]] || unavailable "needs root (it starts daemons / creates network namespaces)"
for tool in "${tools[@]}"; do
  command -v "$tool" > /dev/null ||
    unavailable "$tool not found (scripts/test.sh installs the Debian packages)"
done
if [[ $kind == netns ]]; then
  # A container without CAP_SYS_ADMIN cannot make namespaces: that is an environment, not a bug.
  ip netns add qshard-probe 2> /dev/null || unavailable "cannot create network namespaces here"
  ip netns del qshard-probe
  "${script[@]}" up 2 "$state"
else
  "${script[@]}" start "$state"
fi
