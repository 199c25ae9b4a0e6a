#!/usr/bin/env bash
# npm run loadtest [-- <k6 run options>]: the k6 drop scenario (loadtest/drop.js) against a running
# stack. Runs the k6 found on PATH (or K6=<path to a k6 v1 binary>); without one, k6's official
# container image (grafana/k6, K6_IMAGE to pick another) when docker is there. k6 is never built here.
# Configuration comes from the environment and is passed through to the script (see drop.js):
#   ADMIN_TOKEN (required), BASE_URL, SEATS, POOL, VUS, DURATION, MAX_SEATS_PER_ORDER, HOLD_TTL_SECONDS,
#   EVENT_ID, CONFIRM_BUDGET_MS; k6's own K6_* variables too.
# In the container k6 shares the host's network, so BASE_URL=http://127.0.0.1:3000 reaches a local API
# (on Docker Desktop, enable host networking or use http://host.docker.internal:3000). File paths in
# k6 options (--out json=..., --summary-export) are inside the container: prefer K6 on PATH for those.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${K6_IMAGE:-grafana/k6:1.8.1}"
script="loadtest/drop.js"
# What drop.js reads; k6 passes its environment to the script as __ENV.
vars=(ADMIN_TOKEN BASE_URL SEATS POOL VUS DURATION MAX_SEATS_PER_ORDER HOLD_TTL_SECONDS EVENT_ID CONFIRM_BUDGET_MS)

if [[ -z "${ADMIN_TOKEN:-}" ]]; then
  echo "loadtest: set ADMIN_TOKEN to the API's admin token (setup creates the event through /admin/events)" >&2
  exit 1
fi

if [[ -n "${K6:-}" ]]; then
  if [[ ! -x "$K6" ]]; then
    echo "loadtest: K6=$K6 is not an executable" >&2
    exit 1
  fi
  exec "$K6" run "$@" "$root/$script"
fi

if command -v k6 >/dev/null 2>&1; then
  exec k6 run "$@" "$root/$script"
fi

if command -v docker >/dev/null 2>&1; then
  env_args=()
  for name in "${vars[@]}" $(compgen -e | grep '^K6_' | grep -v '^K6_IMAGE$' || true); do
    if [[ -n "${!name+set}" ]]; then env_args+=(-e "$name"); fi
  done
  tty_args=()
  if [[ -t 0 && -t 1 ]]; then tty_args=(-t); fi
  echo "loadtest: no k6 on PATH; running it from the $image container image" >&2
  exec docker run --rm -i "${tty_args[@]}" --network host "${env_args[@]}" \
    -v "$root/loadtest:/loadtest:ro" "$image" run "$@" "/$script"
fi

echo "loadtest: needs k6 on PATH (https://grafana.com/docs/k6/latest/set-up/install-k6/), K6=<path to k6>, or docker to run the $image image" >&2
exit 1
