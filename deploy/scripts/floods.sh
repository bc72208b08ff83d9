#!/usr/bin/env bash
# The Hardening II and III floods against the built obdcr, alone in its process,
# with a real Hydra and the sandbox: random methods, long management calls
# without a certificate, refused registrations, 64 KiB claim floods and ten
# 30 MiB console sign-ins (multipart and urlencoded). Fails if obdcr's
# resident memory passes FLOOD_MAX_RSS_MIB (60) or a flood grows its request
# series or its audit. The rate limit is off: this measures what gets past it.
# FLOOD_MODE=sign-in (or another mode) sends one flood only.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

HYDRA_PUBLIC_PORT="${HYDRA_PUBLIC_PORT:-7444}"
HYDRA_ADMIN_PORT="${HYDRA_ADMIN_PORT:-7445}"
OBDCR_PORT="${OBDCR_PORT:-7443}"
OBDCR_ADMIN_PORT="${OBDCR_ADMIN_PORT:-7446}"
SANDBOX_PORT="${SANDBOX_PORT:-7600}"

source deploy/scripts/lib.sh
ports_free "$HYDRA_PUBLIC_PORT" "$HYDRA_ADMIN_PORT" "$OBDCR_PORT" "$OBDCR_ADMIN_PORT" "$SANDBOX_PORT" || exit 1
trap cleanup EXIT INT TERM
build_all
work=.cache/floods
rm -rf "$work"
mkdir -p "$work"
start_sandbox
start_hydra
OBDCR_TPP_RATE_LIMIT=0 start_obdcr memory
OBDCR_ADMIN_TOKEN="local-admin-token-0123456789" $sb flood --obdcr "https://127.0.0.1:$OBDCR_PORT" \
  --admin-url "http://127.0.0.1:$OBDCR_ADMIN_PORT" --mode "${FLOOD_MODE:-all}" --count "${FLOOD_COUNT:-3000}" --concurrency 8 \
  --max-rss-mib "${FLOOD_MAX_RSS_MIB:-60}" | tee "$work/floods.jsonl"
