#!/usr/bin/env bash
# Makes the TLS material docker-compose.yml mounts: the sandbox's CA, obdcr's
# server certificate and the sandbox directory's keys, in deploy/compose/sandbox.
# Run once before `docker compose up`.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"
dir=deploy/compose/sandbox
if [ -f "$dir/sandbox.json" ]; then
  echo "compose-tls: $dir exists; remove it to start again"
  exit 0
fi
go run ./cmd/obdcr-sandbox init --dir "$dir" --listen sandbox:8600
go run ./cmd/obdcr-sandbox tpp add --dir "$dir" --profile uk --name Acme
go run ./cmd/obdcr-sandbox tpp add --dir "$dir" --profile au --name Koala
chmod -R a+rX "$dir"
echo "compose-tls: made $dir; now: docker compose up"
