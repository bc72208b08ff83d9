#!/usr/bin/env bash
# make faults: PostgreSQL, Hydra, the sandbox, three obdcr replicas and a load
# client, each on a network namespace of its own, and faults between them while
# the load runs; invariants checked against Hydra's and PostgreSQL's own state.
# Prints a table, ends with "faults: N run, M invariant violations", and writes
# deploy/faults/RESULTS.md. `faults.sh --short` (make test) runs two faults,
# a replica cut from PostgreSQL and a replica killed, and writes no RESULTS.md.
#
# Violations are results: the exit code is 0 unless FAULTS_ENFORCE=1, which
# makes any violation fail the run. FAULTS_WINDOW sets the compensation window
# (default 60s). Needs root, ip(8) and nft(8) (installed from Debian when
# missing); without root it says so in one line and runs nothing.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

short=0
if [ "${1:-}" = "--short" ]; then
  short=1
  shift
fi

if [ "$(id -u)" != 0 ]; then
  echo "faults: skipped: network namespaces need root; nothing was run"
  exit 0
fi
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
if ! have ip || ! have nft; then
  echo "faults: installing Debian's iproute2 and nftables for the namespaces and partitions" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2 >/dev/null; }; then
    echo "faults: skipped: ip and nft are missing and could not be installed; nothing was run"
    exit 0
  fi
fi
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "faults: installing Debian's postgresql" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

hydra="${OBDCR_HYDRA_BIN:-$(deploy/scripts/hydra.sh)}"
mkdir -p bin
go build -o bin/obdcr ./cmd/obdcr
go build -o bin/obdcr-sandbox ./cmd/obdcr-sandbox
go build -o bin/faults ./deploy/faults

# bin/faults tears its namespaces down itself; this is for when it is killed.
trap 'bin/faults down' EXIT

args=(--hydra "$hydra" --window "${FAULTS_WINDOW:-60s}")
if [ "$short" = 1 ]; then
  args+=(--faults pg-cut-r1,kill9-r1 --duration 12s --warm 3s --after 5s)
else
  args+=(--results deploy/faults/RESULTS.md)
fi

set +e
bin/faults all "${args[@]}" "$@"
code=$?
set -e
case "$code" in
  0 | 4) exit 0 ;; # no violation; or namespaces cannot be made here (it said so)
  3)
    if [ "${FAULTS_ENFORCE:-0}" = 1 ]; then
      echo "faults: invariant violations, and FAULTS_ENFORCE=1: failing" >&2
      exit 1
    fi
    echo "faults: the violations above are reported, not enforced (FAULTS_ENFORCE=1 fails on them)"
    exit 0
    ;;
  *) exit "$code" ;;
esac
