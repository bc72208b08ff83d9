#!/usr/bin/env bash
# make demo: Hydra, obdcr and the sandbox on loopback; a UK and an AU TPP register
# over mutual TLS; the resulting Hydra clients are shown. DEMO_ONCE=1 exits after.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

HYDRA_PUBLIC_PORT="${HYDRA_PUBLIC_PORT:-4444}"
HYDRA_ADMIN_PORT="${HYDRA_ADMIN_PORT:-4445}"
OBDCR_PORT="${OBDCR_PORT:-8443}"
OBDCR_ADMIN_PORT="${OBDCR_ADMIN_PORT:-8444}"
SANDBOX_PORT="${SANDBOX_PORT:-8600}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
for port in "$HYDRA_PUBLIC_PORT" "$HYDRA_ADMIN_PORT" "$OBDCR_PORT" "$OBDCR_ADMIN_PORT" "$SANDBOX_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is in use on 127.0.0.1; stop what uses it or set the *_PORT variables" >&2
    exit 1
  fi
done

say "Building Ory Hydra v2.3.0 (cached after the first run), obdcr and obdcr-sandbox"
hydra="$(deploy/scripts/hydra.sh)"
mkdir -p .cache/bin
go build -o .cache/bin/obdcr ./cmd/obdcr
go build -o .cache/bin/obdcr-sandbox ./cmd/obdcr-sandbox
sb=.cache/bin/obdcr-sandbox

work=.cache/demo
rm -rf "$work"
mkdir -p "$work"
export OBDCR_SANDBOX_DIR="$work/sandbox"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_ready() { # url name logfile
  if ! $sb wait "$1"; then
    echo "demo: $2 did not become ready; its log:" >&2
    tail -n 40 "$3" >&2
    exit 1
  fi
}

say "Sandbox: a UK Open Banking Directory and an AU CDR Register on https://127.0.0.1:$SANDBOX_PORT"
$sb init --listen "127.0.0.1:$SANDBOX_PORT"
$sb tpp add --profile uk --name Acme >"$work/acme.json"
$sb tpp add --profile au --name Koala >"$work/koala.json"
$sb serve --listen "127.0.0.1:$SANDBOX_PORT" >"$work/sandbox.log" 2>&1 &
pids+=($!)
wait_ready "https://127.0.0.1:$SANDBOX_PORT/uk/directory/jwks" sandbox "$work/sandbox.log"

say "Ory Hydra on :$HYDRA_PUBLIC_PORT (public) and :$HYDRA_ADMIN_PORT (admin), its own registration endpoint off"
DSN=memory SECRETS_SYSTEM=obdcr-demo-system-secret-0123456789 \
  URLS_SELF_ISSUER="http://127.0.0.1:$HYDRA_PUBLIC_PORT" \
  SERVE_PUBLIC_PORT="$HYDRA_PUBLIC_PORT" SERVE_ADMIN_PORT="$HYDRA_ADMIN_PORT" \
  SERVE_PUBLIC_HOST=127.0.0.1 SERVE_ADMIN_HOST=127.0.0.1 \
  OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=false \
  WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL="https://127.0.0.1:$OBDCR_PORT/register" \
  SSL_CERT_FILE="$OBDCR_SANDBOX_DIR/ca.pem" LOG_LEVEL=warn \
  "$hydra" serve all --dev --sqa-opt-out >"$work/hydra.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$HYDRA_ADMIN_PORT/health/ready" hydra "$work/hydra.log"

say "obdcr: TPP listener https://127.0.0.1:$OBDCR_PORT (mTLS), admin http://127.0.0.1:$OBDCR_ADMIN_PORT"
export OBDCR_LISTEN="127.0.0.1:$OBDCR_PORT" OBDCR_ADMIN_LISTEN="127.0.0.1:$OBDCR_ADMIN_PORT" \
  OBDCR_TLS_CERT_FILE="$OBDCR_SANDBOX_DIR/obdcr-cert.pem" OBDCR_TLS_KEY_FILE="$OBDCR_SANDBOX_DIR/obdcr-key.pem" \
  OBDCR_TLS_CLIENT_CA_FILE="$OBDCR_SANDBOX_DIR/ca.pem" \
  OBDCR_ISSUER="http://127.0.0.1:$HYDRA_PUBLIC_PORT" HYDRA_ADMIN_URL="http://127.0.0.1:$HYDRA_ADMIN_PORT" \
  OBDCR_UK_SSA_JWKS_URL="https://127.0.0.1:$SANDBOX_PORT/uk/directory/jwks" \
  OBDCR_AU_SSA_JWKS_URL="https://127.0.0.1:$SANDBOX_PORT/cdr-register/v1/jwks" \
  OBDCR_AU_REGISTER_URL="https://127.0.0.1:$SANDBOX_PORT" \
  OBDCR_ALLOW_PRIVATE_JWKS=true OBDCR_ADMIN_TOKEN="demo-admin-token-0123456789" \
  SSL_CERT_FILE="$OBDCR_SANDBOX_DIR/ca.pem"
export OBDCR_PROFILES="${OBDCR_PROFILES:-uk,au}"
.cache/bin/obdcr serve 2>"$work/obdcr.log" &
pids+=($!)
wait_ready "http://127.0.0.1:$OBDCR_ADMIN_PORT/health/ready" obdcr "$work/obdcr.log"

show_client() { # tpp-json-file
  local id
  id="$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$1")"
  say "The client as Hydra's admin API shows it (GET /admin/clients/$id)"
  $sb hydra-client --client-id "$id" "http://127.0.0.1:$HYDRA_ADMIN_PORT"
}

say "UK: TPP Acme registers over mutual TLS (POST /register, application/jwt)"
$sb register --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "http://127.0.0.1:$HYDRA_PUBLIC_PORT" | tee "$work/uk-201.json"
show_client "$work/uk-201.json"

say "UK: Acme reads its registration back: GET /register/{client_id} with a client_credentials token Hydra issued by private_key_jwt"
uk_id="$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$work/uk-201.json")"
$sb get --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --token-url "http://127.0.0.1:$HYDRA_PUBLIC_PORT/oauth2/token" --client-id "$uk_id" >"$work/uk-get.json"
head -n 12 "$work/uk-get.json"
echo "  ..."

if [[ ",$OBDCR_PROFILES," == *",au,"* ]]; then
  say "AU: data recipient Koala registers over mutual TLS"
  $sb register --tpp Koala --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "http://127.0.0.1:$HYDRA_PUBLIC_PORT" | tee "$work/au-201.json"
  show_client "$work/au-201.json"
fi

say "A refused request: a redirect URI outside the SSA"
$sb register --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "http://127.0.0.1:$HYDRA_PUBLIC_PORT" \
  --set 'redirect_uris=["https://evil.example/cb"]' || true

say "An admin checks a request with several faults: obdcr check lists every one, and registers nothing"
$sb register --tpp Acme --aud "http://127.0.0.1:$HYDRA_PUBLIC_PORT" --print-jwt \
  --set 'redirect_uris=["https://evil.example/cb"]' --set token_endpoint_auth_method=tls_client_auth \
  --set id_token_signed_response_alg=RS256 >"$work/faulty.jwt"
OBDCR_ADMIN_URL="http://127.0.0.1:$OBDCR_ADMIN_PORT" .cache/bin/obdcr check "$work/faulty.jwt" | grep -v ' pass '

if [ "${DEMO_ONCE:-}" = "1" ]; then
  say "Done (DEMO_ONCE=1). Logs are in $work."
  exit 0
fi
say "Running. Try: OBDCR_SANDBOX_DIR=$OBDCR_SANDBOX_DIR $sb --help   Logs: $work/*.log   Ctrl-C stops."
wait
