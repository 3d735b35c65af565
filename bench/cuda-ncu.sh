#!/usr/bin/env bash
# Nsight Compute over the CUDA engine's kernels, on the GPU machine after shared/device/pack.sh packed the device
# check (mamba/cuda/README.md): the fused decode step at batch 1, ssm_step_dt four sequences a thread at batch 64,
# the mma step's in_proj kernel at batch 64 (and stall samples per SASS instruction, as CSV: mma-b64-sass, and
# fused-b1-sass for step_in_proj_conv), the six launches' small kernels at batch 8, the prefill's scan, conv and
# norm at 32K, and the staged scan's passes at 32K, all of the 130m shape. Arguments name the groups to run (all when
# none). Writes one text report per group to $OUT (or ./ncu-out) and prints each kernel's headline metrics.
# ncu replays each kernel with the caches flushed, so a decode kernel's time here includes DRAM latency that a graph
# replay partly hides: read durations against the device check's events, and stalls and occupancy from here.
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  echo "usage: bash bench/cuda-ncu.sh [fused-b1|ssm-s4-b64|mma-b64|mma-b64-sass|fused-b1-sass|unfused-b8|prefill-32k|prefill-staged-32k ...]"
  echo "       (after: . .device/boot.sh; needs ncu on PATH)"
  exit 0
fi
out="${OUT:-ncu-out}"
mkdir -p "$out"
command -v ncu >/dev/null || { echo "ncu is not on PATH" >&2; exit 3; }
sections="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats"
check="node .device/app/device-check.mjs --out /tmp/ncu-check --shapes 130m --budget-s 200"
groups=" $* "
run() { # name, kernel regex, launches, device-check arguments
  [[ -z "${groups// /}" || "$groups" == *" $1 "* ]] || return 0
  echo "ncu: $1 ..." >&2
  timeout 200 ncu --clock-control none $sections -k "regex:$2" -c "$3" $check $4 > "$out/cuda-ncu-$1.txt" 2>&1 || echo "ncu $1: exit $?" >&2
}
sass() { # name, kernel regex, device-check arguments: the first launch's warp-stall samples per SASS instruction (CSV)
  [[ -z "${groups// /}" || "$groups" == *" $1 "* ]] || return 0
  echo "ncu: $1 ..." >&2
  timeout 200 ncu --clock-control none --section SourceCounters --section WarpStateStats -k "regex:$2" -c 1 -f \
    -o "/tmp/ncu-$1" $check $3 > "$out/cuda-ncu-$1.txt" 2>&1 || echo "ncu $1: exit $?" >&2
  ncu -i "/tmp/ncu-$1.ncu-rep" --page source --csv --print-source sass > "$out/cuda-ncu-$1.csv" 2>&1 || echo "ncu $1 source: exit $?" >&2
}
run fused-b1 '^(step_in_proj_conv|step_dt_ssm|step_out_proj)$' 3 '--phases decode-probe'
run ssm-s4-b64 '^ssm_step_dt_s4$' 1 '--phases decode-probe'
run mma-b64 '^step_in_proj_conv_mma$' 1 '--phases decode-probe'
sass mma-b64-sass '^step_in_proj_conv_mma$' '--phases decode-probe'
sass fused-b1-sass '^step_in_proj_conv$' '--phases decode-probe'
run unfused-b8 '^(ssm_step_dt|conv_step|add_rmsnorm)$' 3 '--phases decode-probe'
run prefill-32k '^(scan_chunk_state|scan_carry|scan_chunk_output|conv1d_silu|add_rmsnorm)$' 5 '--phases prefill-probe --lengths 32768'
run prefill-staged-32k '^(scan_chunk_state_staged|scan_chunk_output_staged)$' 2 '--phases prefill-probe --lengths 32768 --scan split-staged'
for f in "$out"/cuda-ncu-*.txt; do
  echo "== $f"
  grep -E "^  [a-z_0-9]+ \(|Duration|Registers Per|Achieved Occupancy|Block Limit Reg|DRAM Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued|Issued Warp Per Scheduler|Waves Per SM" "$f" | cut -c1-110
done
