#!/usr/bin/env bash
# Runs sdflow's benchmark and the PyTorch/diffusers peer on the same components, sizes, precision and
# thread count, one after the other on this machine, and prints the ratios (sdflow time / PyTorch time).
#
#   Benchmarks/compare.sh [--precision fp32|bf16] [--runs N] [component:WxH ...]
#   e.g. Benchmarks/compare.sh --precision fp32 unet:512x512 unet:1024x1024 vae:512x512 clip
#
# Needs a release build (swift build -c release) and Python with Tests/Fixtures/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
precision=fp32
runs=3
threads=$(nproc)
specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --precision) precision=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) specs+=("$1"); shift ;;
  esac
done
[ ${#specs[@]} -gt 0 ] || specs=(unet:512x512 vae:512x512 clip)
bin=.build/release/sdflow
[ -x "$bin" ] || swift build -c release
out=$(mktemp)
for spec in "${specs[@]}"; do
  comp=${spec%%:*}
  size=${spec#*:}; [ "$size" = "$spec" ] && size=1024x1024
  w=${size%x*}; h=${size#*x}
  ours=$("$bin" bench "$comp" --width "$w" --height "$h" --runs "$runs" --precision "$precision" --json | tail -1)
  extra=(); [ "${CHANNELS_LAST:-0}" = 1 ] && extra=(--channels-last)
  peer=$(python3 Benchmarks/diffusers_reference.py "$comp" --width "$w" --height "$h" --runs "$runs" --threads "$threads" "${extra[@]}" \
         --precision "$precision" 2>/dev/null | tail -1)
  echo "$ours" >> "$out"; echo "$peer" >> "$out"
  python3 - "$ours" "$peer" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
size = f"{a['width']}x{a['height']}" if a['width'] else "77 tokens"
print(f"{a['component']:9s} {size:10s} {a['precision']:5s} sdflow {a['median_s']:8.2f}s  pytorch {b['median_s']:8.2f}s  "
      f"ratio {a['median_s'] / b['median_s']:.2f}  sdflow {a.get('gflops', 0):.0f} GFLOP/s  "
      f"RSS {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} MB")
PY
done
echo "raw JSON lines: $out"
