#!/usr/bin/env bash
# The persistent local services behind a runner: bluestore radosgw (data survives restarts) and Redis with AOF.
#
#   infra/local/services.sh start   install if missing, start both (idempotent), create nothing else
#   infra/local/services.sh stop    stop both (data stays in .data/)
#   infra/local/services.sh env     print the runner's environment for them (S3_*, REDIS_URL)
#
# Ports: S3 on 127.0.0.1:7480 (RGW_PORT), Redis on 127.0.0.1:6390 (REDIS_PORT). Data: .data/rgw-bluestore, .data/redis-6390.
# A runner on top:  set -a; eval "$(infra/local/services.sh env)"; set +a
#                   RUNNER_HMAC_SECRET=... RUNNER_WEBHOOK_SECRET=whsec_... RUNNER_MODEL_DIR=models/... npx tsx runner/cli.ts serve
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RGW_STORE=bluestore

case "${1:-}" in
  start)
    "$here/install.sh"
    "$here/radosgw.sh" start
    "$here/redis.sh" start
    ;;
  stop)
    "$here/redis.sh" stop
    "$here/radosgw.sh" stop
    ;;
  env)
    "$here/radosgw.sh" env
    echo "S3_BUCKET=deciserve"
    echo "S3_CREATE_BUCKET=1"
    "$here/redis.sh" env
    ;;
  -h | --help | help) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0" ;;
  *) awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0" >&2; exit 2 ;;
esac
