# Shared by demo.sh and bench.sh: build, then start the sandbox, Hydra and obdcr
# on loopback. Source it from the repository's top folder; set the *_PORT
# variables and `work` (a scratch folder) first. HYDRA_CPUS and OBDCR_CPUS, when
# set, pin that process to those CPUs (a taskset list; Go sizes GOMAXPROCS from it).
# EDGE_PORT, when set, turns obdcr's FAPI edge on there: the edge is then the
# issuer, Hydra's URLS_SELF_ISSUER and URLS_SELF_PUBLIC.

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# on_cpus VAR: the command prefix that pins to the CPUs listed in $VAR, if any.
on_cpus() {
  local cpus="${!1:-}"
  if [ -n "$cpus" ]; then echo "taskset -c $cpus"; fi
}

ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use on 127.0.0.1; stop what uses it or set the *_PORT variables" >&2
      return 1
    fi
  done
}

build_all() {
  hydra="$(deploy/scripts/hydra.sh)"
  mkdir -p .cache/bin
  # obdcr is built as the Dockerfile builds what ships (static, no symbol
  # table): its figures are the deployed binary's, its memory included.
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o .cache/bin/obdcr ./cmd/obdcr
  go build -o .cache/bin/obdcr-sandbox ./cmd/obdcr-sandbox
  sb=.cache/bin/obdcr-sandbox
}

wait_ready() { # url name logfile
  if ! $sb wait "$1"; then
    echo "$2 did not become ready; its log:" >&2
    tail -n 40 "$3" >&2
    exit 1
  fi
}

start_sandbox() { # then: TPPs may be added
  export OBDCR_SANDBOX_DIR="$work/sandbox"
  $sb init --listen "127.0.0.1:$SANDBOX_PORT" >/dev/null
  # It is also the bank's login and consent app, accepting through Hydra's admin API.
  $sb serve --listen "127.0.0.1:$SANDBOX_PORT" --hydra-admin "http://127.0.0.1:$HYDRA_ADMIN_PORT" >"$work/sandbox.log" 2>&1 &
  pids+=($!)
  wait_ready "https://127.0.0.1:$SANDBOX_PORT/uk/directory/jwks" sandbox "$work/sandbox.log"
}

# issuer: the bank's issuer URL, the edge's when it is on, else Hydra's public URL.
issuer() {
  if [ -n "${EDGE_PORT:-}" ]; then echo "https://127.0.0.1:$EDGE_PORT"; else echo "http://127.0.0.1:$HYDRA_PUBLIC_PORT"; fi
}

# Hydra --dev sets cookies without Secure, and by default SameSite=None, which
# browsers drop (the login CSRF cookie would never come back): Lax instead.
start_hydra() { # sets hydra_pid
  DSN=memory SECRETS_SYSTEM=obdcr-local-system-secret-0123456789 \
    URLS_SELF_ISSUER="$(issuer)" URLS_SELF_PUBLIC="$(issuer)" \
    SERVE_COOKIES_SAME_SITE_MODE=Lax TTL_AUTH_CODE=60s \
    SERVE_PUBLIC_PORT="$HYDRA_PUBLIC_PORT" SERVE_ADMIN_PORT="$HYDRA_ADMIN_PORT" \
    SERVE_PUBLIC_HOST=127.0.0.1 SERVE_ADMIN_HOST=127.0.0.1 \
    OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=false \
    WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL="https://127.0.0.1:$OBDCR_PORT/register" \
    URLS_LOGIN="https://127.0.0.1:$SANDBOX_PORT/hydra/login" URLS_CONSENT="https://127.0.0.1:$SANDBOX_PORT/hydra/consent" \
    URLS_ERROR="https://127.0.0.1:$SANDBOX_PORT/hydra/error" \
    SSL_CERT_FILE="$OBDCR_SANDBOX_DIR/ca.pem" LOG_LEVEL=warn \
    $(on_cpus HYDRA_CPUS) "$hydra" serve all --dev --sqa-opt-out >>"$work/hydra.log" 2>&1 &
  hydra_pid=$!
  pids+=($hydra_pid)
  wait_ready "http://127.0.0.1:$HYDRA_ADMIN_PORT/health/ready" hydra "$work/hydra.log"
  fapi_hydra >"$work/doctor-fix.txt" 2>&1
}

# fapi_hydra: set Hydra up as the bank must for FAPI, with obdcr doctor --fix: an
# ID-token key whose alg the profiles allow (Hydra's first key is RS256).
fapi_hydra() {
  OBDCR_ISSUER="$(issuer)" HYDRA_ADMIN_URL="http://127.0.0.1:$HYDRA_ADMIN_PORT" \
    HYDRA_PUBLIC_URL="http://127.0.0.1:$HYDRA_PUBLIC_PORT" OBDCR_PUBLIC_URL="https://127.0.0.1:$OBDCR_PORT" \
    OBDCR_ADMIN_URL="http://127.0.0.1:$OBDCR_ADMIN_PORT" .cache/bin/obdcr doctor --fix "$@" || true
}

start_obdcr() { # [DSN]; sets obdcr_pid
  export OBDCR_LISTEN="127.0.0.1:$OBDCR_PORT" OBDCR_ADMIN_LISTEN="127.0.0.1:$OBDCR_ADMIN_PORT" \
    OBDCR_TLS_CERT_FILE="$OBDCR_SANDBOX_DIR/obdcr-cert.pem" OBDCR_TLS_KEY_FILE="$OBDCR_SANDBOX_DIR/obdcr-key.pem" \
    OBDCR_TLS_CLIENT_CA_FILE="$OBDCR_SANDBOX_DIR/ca.pem" \
    OBDCR_ISSUER="$(issuer)" HYDRA_ADMIN_URL="http://127.0.0.1:$HYDRA_ADMIN_PORT" \
    HYDRA_PUBLIC_URL="http://127.0.0.1:$HYDRA_PUBLIC_PORT" OBDCR_PUBLIC_URL="https://127.0.0.1:$OBDCR_PORT" \
    OBDCR_UK_SSA_JWKS_URL="https://127.0.0.1:$SANDBOX_PORT/uk/directory/jwks" \
    OBDCR_AU_SSA_JWKS_URL="https://127.0.0.1:$SANDBOX_PORT/cdr-register/v1/jwks" \
    OBDCR_AU_REGISTER_URL="https://127.0.0.1:$SANDBOX_PORT" \
    OBDCR_ALLOW_PRIVATE_JWKS=true OBDCR_ADMIN_TOKEN="local-admin-token-0123456789" \
    SSL_CERT_FILE="$OBDCR_SANDBOX_DIR/ca.pem" OBDCR_DSN="${1:-memory}" \
    OBDCR_TPP_RATE_LIMIT="${OBDCR_TPP_RATE_LIMIT:-20/s}"
  export OBDCR_PROFILES="${OBDCR_PROFILES:-uk,au}"
  if [ -n "${EDGE_PORT:-}" ]; then
    # The edge serves the issuer with obdcr's TPP certificate and signs with the sandbox's key.
    export OBDCR_EDGE_LISTEN="127.0.0.1:$EDGE_PORT" OBDCR_EDGE_PUBLIC_URL="$(issuer)" \
      OBDCR_EDGE_SIGNING_KEY_FILE="$OBDCR_SANDBOX_DIR/edge-signing-key.pem"
  else
    unset OBDCR_EDGE_LISTEN OBDCR_EDGE_PUBLIC_URL OBDCR_EDGE_SIGNING_KEY_FILE
  fi
  $(on_cpus OBDCR_CPUS) .cache/bin/obdcr serve 2>>"$work/obdcr.log" &
  obdcr_pid=$!
  pids+=($obdcr_pid)
  wait_ready "http://127.0.0.1:$OBDCR_ADMIN_PORT/health/ready" obdcr "$work/obdcr.log"
}
