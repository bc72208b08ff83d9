#!/usr/bin/env bash
# make bench: micro-benchmarks of the validation path, then the load tool through
# obdcr into a real Hydra (DSN=memory) beside Hydra alone, at concurrency 16
# (obdcr on memory, then SQLite) and 64 (peak RSS). Ends with one JSON line.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"

HYDRA_PUBLIC_PORT="${HYDRA_PUBLIC_PORT:-5444}"
HYDRA_ADMIN_PORT="${HYDRA_ADMIN_PORT:-5445}"
OBDCR_PORT="${OBDCR_PORT:-9443}"
OBDCR_ADMIN_PORT="${OBDCR_ADMIN_PORT:-9444}"
SANDBOX_PORT="${SANDBOX_PORT:-9600}"
COUNT="${BENCH_COUNT:-2000}"

source deploy/scripts/lib.sh
ports_free "$HYDRA_PUBLIC_PORT" "$HYDRA_ADMIN_PORT" "$OBDCR_PORT" "$OBDCR_ADMIN_PORT" "$SANDBOX_PORT" || exit 1
trap cleanup EXIT INT TERM
build_all
work=.cache/bench
rm -rf "$work"
mkdir -p "$work"

say "Micro-benchmarks: the whole validation path beside the two bare PS256 verifications"
# The ratio comes from one benchmark that alternates the two in blocks, so a
# noisy neighbour slows both alike; the median of five runs is kept per profile.
go test ./policy -run '^$' -bench 'ValidationOverVerify' -benchmem -count 5 | tee "$work/ratio.txt"
median_ratio() { awk -v b="$1" '$1 ~ "^"b"-" {for (i = 2; i < NF; i++) if ($(i+1) == "ratio") print $i}' "$work/ratio.txt" |
  sort -n | awk '{v[NR] = $1} END {printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
uk_ratio="$(median_ratio BenchmarkValidationOverVerify/uk)"; au_ratio="$(median_ratio BenchmarkValidationOverVerify/au)"
validation_over_verify="$(awk -v a="$uk_ratio" -v b="$au_ratio" 'BEGIN {printf "%.2f", (a > b) ? a : b}')"
# Allocations, and each path on its own, for the record.
go test ./policy -run '^$' -bench '^Benchmark(ValidationUK|ValidationAU|BareVerifyTwoPS256|ParseClaims)$' -benchmem -count 3 | tee "$work/micro.txt"
echo "validation ÷ two bare verifications (median of 5 paired runs): UK ${uk_ratio}, AU ${au_ratio}"

start_sandbox
start_hydra
load() { # concurrency count
  $sb load --obdcr "https://127.0.0.1:$OBDCR_PORT" --aud "http://127.0.0.1:$HYDRA_PUBLIC_PORT" \
    --admin-url "http://127.0.0.1:$OBDCR_ADMIN_PORT" --hydra-admin "http://127.0.0.1:$HYDRA_ADMIN_PORT" \
    --concurrency "$1" --count "$2" >"$work/load-$1.txt"
  grep -v '^{' "$work/load-$1.txt" >&2
  tail -n 1 "$work/load-$1.txt"
}
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -n 1; }

say "Load: obdcr (DSN=memory) + Hydra beside Hydra alone, concurrency 16"
start_obdcr memory
mem16="$(load 16 "$COUNT" | tail -n 1)"

say "Load: concurrency 64, for obdcr's peak memory"
load 64 "$((COUNT / 2))" >/dev/null
rss_kib="$(awk '/VmHWM/ {print $2}' "/proc/$obdcr_pid/status")"
rss_mib="$(awk -v k="$rss_kib" 'BEGIN {printf "%.1f", k/1024}')"
echo "obdcr peak RSS (VmHWM) after concurrency 64: ${rss_mib} MiB"
kill "$obdcr_pid"; wait "$obdcr_pid" 2>/dev/null || true

say "Load: obdcr on SQLite + Hydra beside Hydra alone, concurrency 16"
start_obdcr "sqlite://$work/obdcr.db"
sqlite16="$(load 16 "$COUNT" | tail -n 1)"

obdcr_rate="$(echo "$mem16" | sed -n 's/.*"obdcr_and_hydra":{[^}]*"per_second":\([0-9.]*\).*/\1/p')"
hydra_rate="$(echo "$mem16" | sed -n 's/.*"hydra_alone":{[^}]*"per_second":\([0-9.]*\).*/\1/p')"
obdcr_cpu="$(echo "$mem16" | sed -n 's/.*"obdcr_and_hydra":{.*"cpu_ms_per_op":{"obdcr":\([0-9.]*\).*"hydra_alone".*/\1/p')"
hydra_cpu="$(echo "$mem16" | sed -n 's/.*"hydra_alone":{.*"cpu_ms_per_op":{"obdcr":[0-9.]*,"hydra":\([0-9.]*\).*/\1/p')"
printf '{"validation_over_verify":%s,"validation_over_verify_uk":%s,"validation_over_verify_au":%s,"obdcr_over_hydra":%.2f,"obdcr_over_hydra_sqlite":%.2f,"jwks_fetches_per_registration":%s,"rss_mib_at_64":%s,"registrations_per_s":%.1f,"hydra_creates_per_s":%.1f,"obdcr_cpu_ms_per_registration":%.2f,"hydra_cpu_ms_per_create":%.2f}\n' \
  "$validation_over_verify" "$uk_ratio" "$au_ratio" "$(echo "$mem16" | field obdcr_over_hydra)" "$(echo "$sqlite16" | field obdcr_over_hydra)" \
  "$(echo "$mem16" | field jwks_fetches_per_registration)" "$rss_mib" "$obdcr_rate" "$hydra_rate" "$obdcr_cpu" "$hydra_cpu"
