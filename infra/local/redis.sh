#!/usr/bin/env bash
# Redis for the BullMQ queue on 127.0.0.1, with AOF persistence so a restart loses nothing accepted.
# Idempotent: `start` on a running server returns at once.
#
#   infra/local/redis.sh start|stop|status|env [--help]
#
# Environment (defaults in brackets):
#   REDIS_PORT      port                          [6390]
#   REDIS_DIR       data directory (AOF, log, pid) [<repo>/.data/redis-$REDIS_PORT]
#   REDIS_FSYNC     appendfsync: always | everysec [always]  (always: no acknowledged write is lost)
set -euo pipefail

usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
case "${1:-}" in start|stop|status|env) ;; -h|--help|help) usage; exit 0 ;; *) usage >&2; exit 2 ;; esac
cmd=$1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${REDIS_PORT:-6390}
dir=${REDIS_DIR:-$repo/.data/redis-$port}
fsync=${REDIS_FSYNC:-always}

ping() { redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; }

start() {
  command -v redis-server >/dev/null || "$here/install.sh"
  mkdir -p "$dir"
  if ping; then return 0; fi
  # noeviction: BullMQ must never lose keys to memory pressure.
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --appendonly yes --appendfsync "$fsync" --save '' \
    --maxmemory-policy noeviction --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" </dev/null >>"$dir/redis.out" 2>&1
  for _ in $(seq 200); do ping && return 0; sleep 0.05; done
  echo "redis.sh: redis did not answer on :$port; see $dir/redis.log" >&2
  return 1
}

stop() {
  [[ -f $dir/redis.pid ]] || return 0
  local pid
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || return 0 # SIGTERM: redis flushes the AOF and exits
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) if ping; then echo "running on :$port"; else echo "not running"; exit 1; fi ;;
  env) echo "REDIS_URL=redis://127.0.0.1:$port" ;;
esac
