#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine (munged, slurmctld and slurmd of Debian's Slurm,
# run as root), for the tests of slurm/*.sbatch through the real sbatch, srun and scontrol.
# Everything it writes lives in STATE (default /tmp/qshard-slurm): the configuration, keys,
# sockets, spool folders, logs and pid files; nothing in /etc is touched.
#
#   bash scripts/slurm-local.sh start [STATE]   # prints the SLURM_CONF clients need
#   bash scripts/slurm-local.sh stop [STATE]    # stops the daemons by their pid files
#   bash scripts/slurm-local.sh status [STATE]
#
#   export SLURM_CONF=/tmp/qshard-slurm/slurm.conf; sbatch --wrap hostname; squeue
#
# The node has this machine's CPUs and memory, one partition `local` (default), processes
# tracked without cgroups (proctrack/linuxproc, task/none: works inside containers) and
# select/cons_tres. The ports are 6917 (slurmctld) and 6918 (slurmd) unless QSHARD_SLURM_PORT
# (slurmctld; slurmd uses the next one) says otherwise.
set -euo pipefail

action=${1:-}
state=${2:-${QSHARD_SLURM_DIR:-/tmp/qshard-slurm}}
port=${QSHARD_SLURM_PORT:-6917}

usage() {
  echo "usage: bash scripts/slurm-local.sh start|stop|status [STATE_DIR]" >&2
  exit 2
}

# Stops the daemon whose pid file is $1 (TERM, then KILL after 10 s).
stop_daemon() {
  local pid_file=$1 pid
  [[ -f $pid_file ]] || return 0
  pid=$(cat "$pid_file")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
}

stop() {
  # Jobs first (their processes belong to slurmd's steps), then the daemons.
  if [[ -f $state/slurm.conf ]] && [[ -f $state/slurmctld.pid ]]; then
    SLURM_CONF=$state/slurm.conf timeout 10 scancel --full --quiet --user "$(id -un)" \
      2>/dev/null || true
  fi
  stop_daemon "$state/slurmd.pid"
  stop_daemon "$state/slurmctld.pid"
  stop_daemon "$state/munged.pid"
  echo "slurm-local: stopped ($state)"
}

node_state() {
  SLURM_CONF=$state/slurm.conf timeout 10 sinfo --noheader --format=%t 2>/dev/null | head -n 1
}

start() {
  for tool in munged slurmctld slurmd sinfo sbatch; do
    command -v "$tool" > /dev/null || {
      echo "slurm-local: $tool not found (Debian packages munge slurmctld slurmd slurm-client;" \
        "scripts/test.sh installs them)" >&2
      exit 1
    }
  done
  if [[ $(id -u) -ne 0 ]]; then
    echo "slurm-local: must run as root (slurmd starts jobs as their users)" >&2
    exit 1
  fi
  if [[ -f $state/slurmctld.pid ]] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    echo "slurm-local: already running ($state); stop it first" >&2
    exit 1
  fi
  stop > /dev/null # leftovers of an earlier run that died
  rm -rf "$state"
  mkdir -p "$state"/{munge,ctld,spool}
  chmod 700 "$state/munge"

  # munge: a fresh key for this cluster, its socket in STATE.
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$state/munge/munge.key"
  local socket=$state/munge/munge.socket
  munged --force --key-file="$state/munge/munge.key" --socket="$socket" \
    --pid-file="$state/munged.pid" --log-file="$state/munged.log" \
    --seed-file="$state/munge/munged.seed"

  local node cpus memory user
  node=$(hostname -s)
  cpus=$(nproc)
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  user=$(id -un)
  cat > "$state/slurm.conf" << EOF
# Written by scripts/slurm-local.sh: a one-node cluster for qshard's tests.
ClusterName=qshard-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$state/slurm.conf" -i
  slurmd -f "$state/slurm.conf" -N "$node"

  # Ready when the node is idle (or mixed/allocated by a job submitted meanwhile).
  local now=""
  for _ in $(seq 120); do
    now=$(node_state || true)
    [[ $now == idle || $now == mix || $now == alloc ]] && break
    sleep 0.5
  done
  if [[ $now != idle && $now != mix && $now != alloc ]]; then
    echo "slurm-local: the node did not become idle within 60 s (state '${now:-none}');" \
      "logs in $state" >&2
    tail -n 5 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    stop >&2
    exit 1
  fi
  echo "slurm-local: node $node ($cpus CPUs) idle; clients need:"
  echo "export SLURM_CONF=$state/slurm.conf"
}

status() {
  if [[ ! -f $state/slurm.conf ]]; then
    echo "slurm-local: not started ($state)"
    exit 1
  fi
  SLURM_CONF=$state/slurm.conf sinfo
  SLURM_CONF=$state/slurm.conf squeue
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
