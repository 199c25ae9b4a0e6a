#!/usr/bin/env bash
# npm run loadtest [-- <k6 run options>]: the k6 drop scenario (loadtest/drop.js) against a running
# stack. Builds k6 into .cache/bin with `go install` the first time (needs Go), then runs it.
# Configuration comes from the environment and is passed through to the script (see drop.js):
#   ADMIN_TOKEN (required), BASE_URL, SEATS, POOL, VUS, DURATION, MAX_SEATS_PER_ORDER, HOLD_TTL_SECONDS,
#   EVENT_ID, CONFIRM_BUDGET_MS. Set K6 to use another k6 binary, K6_VERSION to build another v1 tag.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
k6_version="${K6_VERSION:-v1.8.1}"
bin_dir="$root/.cache/bin"
k6="${K6:-$bin_dir/k6}"

if [[ ! -x "$k6" ]]; then
  if [[ -n "${K6:-}" ]]; then
    echo "loadtest: K6=$K6 is not an executable" >&2
    exit 1
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "loadtest: k6 is not built yet and Go is not installed." >&2
    echo "  Install Go (https://go.dev/dl/) and rerun, or point K6 at a k6 v1 binary." >&2
    exit 1
  fi
  echo "loadtest: building k6 $k6_version into $bin_dir (once)..." >&2
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "go.k6.io/k6@$k6_version"
fi

if [[ -z "${ADMIN_TOKEN:-}" ]]; then
  echo "loadtest: set ADMIN_TOKEN to the API's admin token (setup creates the event through /admin/events)" >&2
  exit 1
fi

# k6 passes the process environment to the script as __ENV.
exec "$k6" run "$@" "$root/loadtest/drop.js"
