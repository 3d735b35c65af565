#!/usr/bin/env bash
# Drives train/run_device.sh across several device calls (one call may last at most 10 minutes):
#   bash train/device_session.sh start   # copy the checkout to /tmp/repo, start the run detached, follow it
#   bash train/device_session.sh wait    # follow it again; once done, pack the outputs into $OUT
# The run lives in /tmp/repo so the next call's re-sync of the checkout cannot touch its outputs.
set -uo pipefail
RUN=/tmp/repo WORK=/tmp/deciserve-train LOG=/tmp/deciserve-train/run.log
if [ "${1:-}" = start ]; then
  nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
  rm -rf "$RUN" && mkdir -p "$WORK" && cp -r . "$RUN"
  (cd "$RUN" && WORK=$WORK setsid nohup bash train/run_device.sh > "$LOG" 2>&1 < /dev/null &)
fi
for _ in $(seq 1 "${POLLS:-56}"); do
  [ -e "$WORK/done" ] && break
  if ! pgrep -f run_device.sh > /dev/null; then echo "run_device.sh is not running"; break; fi
  sleep 10
done
grep -E '^\{"step"' "$LOG" | tail -3
grep -vE '^\{"step"' "$LOG" | tail -40
if [ -e "$WORK/done" ] || ! pgrep -f run_device.sh > /dev/null; then
  cd "$RUN" && mkdir -p "$OUT"
  [ -d models/deciserve-mamba ] && tar cf "$OUT/model.tar" models/deciserve-mamba
  [ -d test/fixtures ] && tar cf "$OUT/fixtures.tar" test/fixtures
  tar cf "$OUT/results.tar" bench/results 2>/dev/null
  cp "$LOG" "$OUT/run.log"
  ls -la "$OUT"
fi
