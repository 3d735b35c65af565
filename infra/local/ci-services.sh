#!/usr/bin/env bash
# Services for the runner tests in CI (.ci/run) or on a fresh machine.
#
#   infra/local/ci-services.sh start   install ceph-mon ceph-osd radosgw redis-server if missing (apt, ~35 s once),
#                                      then start the memstore radosgw on 127.0.0.1:17480 (~2 s)
#   infra/local/ci-services.sh stop    stop that radosgw and any Redis the runner tests left behind
#
# The tests start what is missing themselves (test/runner/harness.ts), so `start` only moves the install and the
# radosgw start out of the test timeouts. Each runner test file runs its own Redis (AOF on) on a free port.
# No environment variables are needed; RGW_PORT / RGW_MON_PORT move the gateway if 17480 / 13300 are taken.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

case "${1:-}" in
  start)
    "$here/install.sh"
    RGW_STORE=memstore "$here/radosgw.sh" start
    ;;
  stop)
    RGW_STORE=memstore "$here/radosgw.sh" stop || true
    for dir in "$repo"/test/.tmp/redis-*/; do
      [[ -f $dir/redis.pid ]] || continue
      pid=$(cat "$dir/redis.pid")
      # Only a redis-server we started from that folder.
      if grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done
    ;;
  -h | --help | help) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0" ;;
  *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0" >&2; exit 2 ;;
esac
