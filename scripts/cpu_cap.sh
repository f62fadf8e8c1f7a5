#!/usr/bin/env bash
# Caps a running process at a fraction of one core, in a cgroup of its own (the CPU controller of
# cgroup v2 when the unified hierarchy has it, else cgroup v1's): a node of a cluster on one
# machine then gets a core budget, as a node of its own machine would. Needs root.
#
#   scripts/cpu_cap.sh PID NAME FRACTION    (FRACTION of one core, e.g. 0.25)
#   scripts/cpu_cap.sh usage NAME           (CPU seconds the group has used so far)
set -euo pipefail
v2=/sys/fs/cgroup
v1=/sys/fs/cgroup/cpu
group() { # the group's folder
  if [ -f "$v2/cgroup.controllers" ] && grep -qw cpu "$v2/cgroup.controllers"; then
    echo "$v2/quarry-$1"
  else
    echo "$v1/quarry-$1"
  fi
}
case "${1:-}" in
  usage)
    g=$(group "$2")
    if [ -f "$g/cpu.stat" ] && grep -q usage_usec "$g/cpu.stat"; then
      awk '/^usage_usec/ {printf "%.3f\n", $2 / 1e6}' "$g/cpu.stat"
    else
      # cgroup v1: the cpuacct hierarchy is mounted apart; the group's tasks' times add up.
      total=0
      for pid in $(cat "$g/cgroup.procs"); do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
      done
      awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f\n", t / hz}'
    fi
    ;;
  [0-9]*)
    pid=$1 name=$2 frac=$3
    g=$(group "$name")
    mkdir -p "$g"
    quota=$(awk -v f="$frac" 'BEGIN {printf "%d", f * 100000}')
    if [ -f "$g/cpu.max" ]; then
      echo "$quota 100000" >"$g/cpu.max"
    else
      echo 100000 >"$g/cpu.cfs_period_us"
      echo "$quota" >"$g/cpu.cfs_quota_us"
    fi
    # Every thread of the process moves with it.
    echo "$pid" >"$g/cgroup.procs"
    ;;
  *)
    echo "usage: scripts/cpu_cap.sh PID NAME FRACTION | usage NAME" >&2
    exit 2
    ;;
esac
