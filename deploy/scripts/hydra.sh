#!/usr/bin/env bash
# Builds Ory Hydra from the Go module proxy once and caches the binary, so that only the
# first test or demo run pays for the build (about 100 s on 2 cores). Prints the binary's path.
#
# Hydra's go.mod carries replace directives, so `go install` cannot build it; the recipe is:
# download the module, make a writable copy, drop the replace of the client module that is not
# in the zip, and build with the sqlite tag so that DSN=memory works.
set -euo pipefail

version="${HYDRA_VERSION:-v2.3.0}"
top="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${OBDCR_CACHE_DIR:-$top/.cache}"
bin="$cache/hydra/$version/hydra"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache/hydra/$version"
work="$(mktemp -d "$cache/hydra/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

export GOSUMDB=off GOFLAGS=-mod=mod
echo "building Ory Hydra $version (first run only)..." >&2
dir="$(cd "$work" && go mod download -json "github.com/ory/hydra/v2@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "hydra.sh: go mod download did not give a module folder for github.com/ory/hydra/v2@$version" >&2
  exit 1
fi
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
go mod edit -dropreplace github.com/ory/hydra-client-go/v2
CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o "$work/hydra" . >&2
mv "$work/hydra" "$bin"
echo "$bin"
