#!/usr/bin/env bash
# Runs sdflow's benchmark and the PyTorch/diffusers peer on the same components, sizes, precision and
# thread count, one after the other on this machine, and prints the ratios (sdflow time / PyTorch time).
#
#   Benchmarks/compare.sh [--precision fp32|bf16] [--runs N] [--pairs P] [component:WxH ...]
#   e.g. Benchmarks/compare.sh --precision fp32 unet:512x512 unet:1024x1024 vae:512x512 clip
#
# --pairs P (default 1) repeats each comparison P times, alternating which side runs first (sdflow
# then PyTorch, PyTorch then sdflow, ...), and ends with the ratios' median and geometric mean: on a
# shared machine whose speed drifts from minute to minute, only such interleaved pairs give a ratio
# that means something.
#
# Needs a release build (swift build -c release) and Python with Tests/Fixtures/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
precision=fp32
runs=3
pairs=1
threads=$(nproc)
specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --precision) precision=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) specs+=("$1"); shift ;;
  esac
done
[ ${#specs[@]} -gt 0 ] || specs=(unet:512x512 vae:512x512 clip)
bin=.build/release/sdflow
[ -x "$bin" ] || swift build -c release
out=$(mktemp)
run_ours() {
  "$bin" bench "$comp" --width "$w" --height "$h" --runs "$runs" --precision "$precision" --json | tail -1
}
run_peer() {
  local extra=(); [ "${CHANNELS_LAST:-0}" = 1 ] && extra=(--channels-last)
  python3 Benchmarks/diffusers_reference.py "$comp" --width "$w" --height "$h" --runs "$runs" --threads "$threads" "${extra[@]}" \
    --precision "$precision" 2>/dev/null | tail -1
}
for spec in "${specs[@]}"; do
  comp=${spec%%:*}
  size=${spec#*:}; [ "$size" = "$spec" ] && size=1024x1024
  w=${size%x*}; h=${size#*x}
  : > "$out.ratios"
  for ((i = 1; i <= pairs; i++)); do
    if (( i % 2 == 1 )); then ours=$(run_ours); peer=$(run_peer)
    else peer=$(run_peer); ours=$(run_ours); fi
    [ -n "$ours" ] && [ -n "$peer" ] || { echo "compare.sh: $spec: a benchmark printed nothing (see its stderr by running it alone)" >&2; exit 1; }
    echo "$ours" >> "$out"; echo "$peer" >> "$out"
    python3 - "$ours" "$peer" "$i" "$pairs" "$out.ratios" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
i, n = int(sys.argv[3]), int(sys.argv[4])
size = f"{a['width']}x{a['height']}" if a['width'] else "77 tokens"
first = "" if n == 1 else f"  [pair {i}/{n}, {'sdflow' if i % 2 else 'pytorch'} first]"
r = a['median_s'] / b['median_s']
print(f"{a['component']:9s} {size:10s} {a['precision']:5s} sdflow {a['median_s']:8.2f}s  pytorch {b['median_s']:8.2f}s  "
      f"ratio {r:.2f}  sdflow {a.get('gflops', 0):.0f} GFLOP/s  "
      f"RSS {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} MB{first}")
with open(sys.argv[5], "a") as f:
    f.write(f"{r:.4f}\n")
PY
  done
  if (( pairs > 1 )); then
    python3 - "$spec" "$out.ratios" <<'PY'
import math, statistics, sys
r = [float(x) for x in open(sys.argv[2]).read().split()]
print(f"{sys.argv[1]}: {len(r)} pairs, ratios {' '.join(f'{x:.2f}' for x in r)}; median {statistics.median(r):.2f}, "
      f"geometric mean {math.exp(sum(map(math.log, r)) / len(r)):.2f}, below 1.0 in {sum(x < 1 for x in r)} of {len(r)}")
PY
  fi
done
echo "raw JSON lines: $out"
