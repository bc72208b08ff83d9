#!/usr/bin/env bash
# make demo: Hydra, obdcr and the sandbox on loopback, obdcr's FAPI edge in front
# of Hydra as the issuer; a UK and an AU TPP register over mutual TLS; the resulting
# Hydra clients are shown and run their flows through the edge, each step
# printed. DEMO_ONCE=1 exits after.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

HYDRA_PUBLIC_PORT="${HYDRA_PUBLIC_PORT:-4444}"
HYDRA_ADMIN_PORT="${HYDRA_ADMIN_PORT:-4445}"
OBDCR_PORT="${OBDCR_PORT:-8443}"
OBDCR_ADMIN_PORT="${OBDCR_ADMIN_PORT:-8444}"
SANDBOX_PORT="${SANDBOX_PORT:-8600}"
EDGE_PORT="${EDGE_PORT:-8445}"

source deploy/scripts/lib.sh
ports_free "$HYDRA_PUBLIC_PORT" "$HYDRA_ADMIN_PORT" "$OBDCR_PORT" "$OBDCR_ADMIN_PORT" "$SANDBOX_PORT" "$EDGE_PORT" || exit 1
trap cleanup EXIT INT TERM

say "Building Ory Hydra v2.3.0 (cached after the first run), obdcr and obdcr-sandbox"
build_all

work=.cache/demo
rm -rf "$work"
mkdir -p "$work"

say "Sandbox: a UK Open Banking Directory and an AU CDR Register on https://127.0.0.1:$SANDBOX_PORT"
start_sandbox
$sb tpp add --profile uk --name Acme >"$work/acme.json"
$sb tpp add --profile au --name Koala >"$work/koala.json"

say "Ory Hydra on :$HYDRA_PUBLIC_PORT (public) and :$HYDRA_ADMIN_PORT (admin), its own registration endpoint off, its issuer obdcr's edge $(issuer)"
start_hydra
echo "obdcr doctor --fix gave Hydra an ID-token key the profiles allow:"
grep '^fixed:' "$work/doctor-fix.txt" || echo "  (it had one)"

say "obdcr: TPP listener https://127.0.0.1:$OBDCR_PORT (mTLS: registration, PAR, token), FAPI edge $(issuer) (the issuer: authorization, JWKS, Hydra's public paths), admin http://127.0.0.1:$OBDCR_ADMIN_PORT"
start_obdcr memory

say "obdcr doctor: the Hydra behind obdcr is set up so that what the bank publishes is what obdcr enforces"
OBDCR_ADMIN_URL="http://127.0.0.1:$OBDCR_ADMIN_PORT" .cache/bin/obdcr doctor | grep -v '^ok  *hydra\.\(certificate\|par\|jarm\|id_token_enc\|s_hash\)' ||
  { echo "obdcr doctor found problems: see above" >&2; exit 1; }

say "The bank's discovery document, as obdcr publishes it (GET https://127.0.0.1:$OBDCR_PORT/.well-known/openid-configuration)"
$sb discovery --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" >"$work/discovery.json"
grep -E '"(issuer|authorization_endpoint|pushed_authorization_request_endpoint|token_endpoint|jwks_uri|registration_endpoint|require_pushed_authorization_requests|authorization_response_iss_parameter_supported|token_endpoint_auth_methods_supported|request_object_signing_alg_values_supported|id_token_signing_alg_values_supported|authorization_signing_alg_values_supported|response_types_supported|response_modes_supported|code_challenge_methods_supported|grant_types_supported|tls_client_certificate_bound_access_tokens)"' -A3 "$work/discovery.json" | grep -v '^--$' | head -n 70

show_client() { # tpp-json-file
  local id
  id="$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$1")"
  say "The client as Hydra's admin API shows it (GET /admin/clients/$id)"
  $sb hydra-client --client-id "$id" "http://127.0.0.1:$HYDRA_ADMIN_PORT"
}

say "UK: TPP Acme registers over mutual TLS (POST /register, application/jwt)"
$sb register --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "$(issuer)" | tee "$work/uk-201.json"
show_client "$work/uk-201.json"

say "UK: Acme's client runs what it registered for, through obdcr's edge: the hybrid flow (code id_token) with a PS256 request object by value (the sandbox is the bank's login and consent app), the answer with iss and an ID token with s_hash, the code redeemed at obdcr's token endpoint by private_key_jwt, a refresh, client_credentials"
$sb flow --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --client-id "$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$work/uk-201.json")"

say "UK: Acme reads its registration back: GET /register/{client_id} with a client_credentials token from obdcr's token endpoint (private_key_jwt)"
uk_id="$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$work/uk-201.json")"
$sb get --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --token-url "https://127.0.0.1:$OBDCR_PORT/oauth2/token" --client-id "$uk_id" >"$work/uk-get.json"
head -n 12 "$work/uk-get.json"
echo "  ..."

if [[ ",$OBDCR_PROFILES," == *",au,"* ]]; then
  say "AU: data recipient Koala registers over mutual TLS"
  $sb register --tpp Koala --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "$(issuer)" | tee "$work/au-201.json"
  show_client "$work/au-201.json"
  say "AU: Koala's client runs the code flow through obdcr's edge: the request object pushed (PAR) over mTLS, PKCE, the browser carrying only the request_uri, the answer in JARM verified with the published JWKS, the code redeemed by private_key_jwt, a refresh and client_credentials"
  $sb flow --tpp Koala --obdcr "https://127.0.0.1:$OBDCR_PORT" --client-id "$(sed -n 's/^  "client_id": "\(.*\)",$/\1/p' "$work/au-201.json")"
fi

say "A refused request: a redirect URI outside the SSA"
$sb register --tpp Acme --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "$(issuer)" \
  --set 'redirect_uris=["https://evil.example/cb"]' || true

say "An admin checks a request with several faults: obdcr check lists every one, and registers nothing"
$sb register --tpp Acme --aud "$(issuer)" --print-jwt \
  --set 'redirect_uris=["https://evil.example/cb"]' --set token_endpoint_auth_method=tls_client_auth \
  --set id_token_signed_response_alg=RS256 >"$work/faulty.jwt"
OBDCR_ADMIN_URL="http://127.0.0.1:$OBDCR_ADMIN_PORT" .cache/bin/obdcr check "$work/faulty.jwt" | grep -v ' pass '

if [ "${DEMO_ONCE:-}" = "1" ]; then
  say "Done (DEMO_ONCE=1). Logs are in $work."
  exit 0
fi
say "Running. Try: OBDCR_SANDBOX_DIR=$OBDCR_SANDBOX_DIR $sb --help   Logs: $work/*.log   Ctrl-C stops."
wait
