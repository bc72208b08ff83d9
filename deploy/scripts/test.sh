#!/usr/bin/env bash
# make test: every test, unit and integration, against a real Hydra (built once and
# cached), with the race detector. Whatever the tests need, this script installs.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

if ! command -v go >/dev/null 2>&1; then
  echo "test: Go is required (https://go.dev/dl); the go.mod names the version" >&2
  exit 1
fi
if ! command -v gcc >/dev/null 2>&1; then
  # cgo is needed for the race detector and for Hydra's sqlite build.
  apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null
fi

# The store tests start their own PostgreSQL cluster (initdb in a temp folder).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test: installing Debian's postgresql for the store tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# The deploy tests check docker-compose.yml with `docker-compose config` (no engine needed).
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "test: installing Debian's docker-compose for the compose check" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi

# The proxy tests run Debian's nginx and haproxy with deploy/proxies' configurations.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! have nginx || ! have haproxy; then
  echo "test: installing Debian's nginx and haproxy for the proxy tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy >/dev/null
fi

# The alerting rules are checked and unit-tested with promtool, from Debian's
# prometheus package. Only promtool is wanted: where systemd started the
# package's server, it is stopped and disabled again.
if ! have promtool; then
  echo "test: installing Debian's prometheus for promtool, which tests deploy/prometheus/alerts.yml" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
fi

# The console's browser tests drive Debian's Chromium.
if ! have chromium; then
  echo "test: installing Debian's chromium for the console's browser tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

OBDCR_HYDRA_BIN="$(deploy/scripts/hydra.sh)"
export OBDCR_HYDRA_BIN

go vet ./...
go test -race -count=1 -timeout 40m ./...

# The short fault run: three replicas, PostgreSQL and Hydra on network
# namespaces; a replica cut from PostgreSQL, then one killed, under load. It
# prints its table, and an invariant violation fails make test
# (FAULTS_ENFORCE=0 only reports it).
# Its compensation window is 30 s, not obdcr's 60 s, and the orphan check
# still means what it says for these two faults: neither holds a create on its
# way to Hydra (the replica cut from PostgreSQL still reaches Hydra at once; a
# killed replica's create is at Hydra, or never will be, moments after the
# kill), and the 60 s is there for creates that arrive late. A half-made registration is judged 15 s after
# its attempt, by a pass every 5 s, on a replica the kills have stopped
# hitting: removed within about 20 s of the last heal. 30 s holds that with
# room to spare, and the run takes about a minute instead of a minute and a half.
FAULTS_ENFORCE="${FAULTS_ENFORCE:-1}" FAULTS_WINDOW="${FAULTS_WINDOW:-30s}" bash deploy/scripts/faults.sh --short
# quietly WHAT COMMAND...: runs COMMAND, showing its output only if it fails.
quietly() {
  local what="$1" log
  shift
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    echo "test: $what failed; see above" >&2
    exit 1
  fi
  rm -f "$log"
}

# The attacker floods against the built binary alone in its process: its memory
# stays under 60 MiB, and no flood grows its series or audit.
quietly "the floods" bash deploy/scripts/floods.sh
echo "floods: methods, management, refusals, claims and 30 MiB sign-ins; obdcr stayed under 60 MiB with no series or audit growth"

# Each benchmark once, so that make bench cannot rot unseen: they fail if the
# request they time is not approved.
quietly "a benchmark" go test -run='^$' -bench=. -benchtime=1x ./policy ./policy/store
echo "bench: every benchmark ran once with no failure"

# Each fuzz target for a fixed number of executions; a crash it finds is saved
# under policy/testdata/fuzz and becomes a regression test of the run above.
# A count, not a duration: Go 1.26's coordinator can report its own -fuzztime
# deadline as a failure ("context deadline exceeded", go.dev/issue/75804) when a
# loaded machine keeps a worker from answering in time; a count sets no deadline.
fuzz_budget="${OBDCR_FUZZTIME:-100000x}"
for entry in policy:FuzzParseJWS policy:FuzzDecodeClaims policy:FuzzParseClaimsAgreesWithEncodingJSON \
  policy:FuzzRedirectURIs policy:FuzzRegister policy:FuzzSettingsDecoder plugin:FuzzManagementPath; do
  pkg="${entry%%:*}" target="${entry#*:}"
  quietly "$target" go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzz_budget" "./$pkg"
  echo "fuzz: $target ran $fuzz_budget with no failure"
done
