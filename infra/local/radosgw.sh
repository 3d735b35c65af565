#!/usr/bin/env bash
# Ceph radosgw as a real local S3 (one mon, one OSD, one gateway on 127.0.0.1), following
# shared/notes/local-s3-radosgw.md. Idempotent: `start` on a running gateway returns at once.
#
#   infra/local/radosgw.sh start|stop|status|env [--help]
#
# Environment (defaults in brackets):
#   RGW_STORE       memstore (RAM, wiped on every start: tests/CI) | bluestore (survives restarts) [memstore]
#   RGW_PORT        S3 HTTP port            [17480 memstore, 7480 bluestore]
#   RGW_MON_PORT    monitor msgr2 port      [13300 memstore, 3300 bluestore]
#   RGW_DIR         data directory          [<repo>/.data/rgw-$RGW_STORE]
#   RGW_ACCESS_KEY / RGW_SECRET_KEY         [deciserve / deciserve-local-secret]
#   RGW_BLOCK_BYTES bluestore sparse block size [21474836480]
set -euo pipefail

usage() { awk 'NR>1 && /^#/ {sub(/^# ?/, ""); print; next} NR>1 {exit}' "$0"; }
case "${1:-}" in start|stop|status|env) ;; -h|--help|help) usage; exit 0 ;; *) usage >&2; exit 2 ;; esac
cmd=$1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
store=${RGW_STORE:-memstore}
case "$store" in
  memstore) port=${RGW_PORT:-17480}; mon_port=${RGW_MON_PORT:-13300} ;;
  bluestore) port=${RGW_PORT:-7480}; mon_port=${RGW_MON_PORT:-3300} ;;
  *) echo "RGW_STORE must be memstore or bluestore" >&2; exit 2 ;;
esac
dir=${RGW_DIR:-$repo/.data/rgw-$store}
access=${RGW_ACCESS_KEY:-deciserve}
secret=${RGW_SECRET_KEY:-deciserve-local-secret}
conf=$dir/ceph.conf
export CEPH_CONF=$conf

log() { echo "radosgw.sh: $*" >&2; }
answers_http() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; }
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

print_env() {
  cat <<ENV
S3_ENDPOINT=http://127.0.0.1:$port
S3_REGION=us-east-1
S3_ACCESS_KEY_ID=$access
S3_SECRET_ACCESS_KEY=$secret
ENV
}

stop_daemons() {
  local pids=() f
  for f in "$dir"/run/*.pid; do
    [[ -f $f ]] || continue
    if pid_alive "$f"; then pids+=("$(cat "$f")"); fi
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 100); do
    local alive=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

write_conf() {
  local fsid=$1 objectstore
  if [[ $store == memstore ]]; then
    objectstore="osd objectstore = memstore
memstore device bytes = 4294967296"
  else
    objectstore="osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${RGW_BLOCK_BYTES:-21474836480}
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096"
  fi
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
paxos propose interval = 0.05
run dir = $dir/run
admin socket = $dir/run/\$cluster-\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$cluster-\$name.log
log to syslog = false
err to syslog = false
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
keyring = $dir/keyring
[osd]
$objectstore
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
rgw enable usage log = false
CONF
}

# First start (always for memstore): monmap, mon, OSD identity and store.
bootstrap() {
  rm -rf "$dir"
  mkdir -p "$dir"/{run,log,mon,osd/ceph-0,rgw}
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
  daemons_out=$dir/log/daemons.out
  ceph-mon -i a </dev/null >>"$daemons_out" 2>&1 9>&-
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph --connect-timeout 20 osd new "$osd_uuid" >/dev/null
  ceph-osd --mkfs -i 0 --osd-uuid "$osd_uuid" >/dev/null 2>&1
  ceph-osd -i 0 </dev/null >>"$daemons_out" 2>&1 9>&-
  radosgw -n client.rgw.a </dev/null >>"$daemons_out" 2>&1 9>&-
  touch "$dir/bootstrapped"
}

wait_http() {
  for _ in $(seq 600); do answers_http && return 0; sleep 0.1; done
  log "radosgw did not answer on :$port; logs in $dir/log"; return 1
}

ensure_user() {
  radosgw-admin user info --uid=deciserve >/dev/null 2>&1 && return 0
  radosgw-admin user create --uid=deciserve --display-name=deciserve \
    --access-key="$access" --secret="$secret" >/dev/null
}

start() {
  command -v radosgw >/dev/null || "$here/install.sh"
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"
  # Concurrent test files may all call start. Daemons get `9>&-` so they do not inherit (and hold) this lock.
  flock -w 180 9 || { log "timed out waiting for $dir.lock"; return 1; }
  if answers_http; then return 0; fi
  stop_daemons # a half-started cluster from an earlier run
  if [[ $store == memstore || ! -f $dir/bootstrapped ]]; then
    bootstrap
  else
    local out=$dir/log/daemons.out
    ceph-mon -i a </dev/null >>"$out" 2>&1 9>&-
    ceph-osd -i 0 </dev/null >>"$out" 2>&1 9>&-
    radosgw -n client.rgw.a </dev/null >>"$out" 2>&1 9>&-
  fi
  wait_http
  ensure_user
  log "S3 on http://127.0.0.1:$port ($store, $dir)"
}

case $cmd in
  start) start ;;
  stop) stop_daemons ;;
  status) if answers_http; then echo "running on :$port"; else echo "not running"; exit 1; fi ;;
  env) print_env ;;
esac
