#!/usr/bin/env bash
# make screenshots: the console's pages in Debian's Chromium at 1440 and 390 px,
# from the browser test, written to deploy/console-screenshots/.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$top"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
OBDCR_HYDRA_BIN="$(deploy/scripts/hydra.sh)"
export OBDCR_HYDRA_BIN
OBDCR_SCREENSHOTS="$top/deploy/console-screenshots" go test -count=1 -run '^TestConsoleInChromium$' ./plugin
ls deploy/console-screenshots
