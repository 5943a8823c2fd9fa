# One call on a lent GPU machine (torch there, no polars, no network): the metrics engine on CUDA
# (equal to the CPU, then its speed), then the reduced training protocol of every model on the
# exported Kvasir-SEG fold (see benchmarks/reduced_protocol.py; export it to .device/kvasir-seg first).
# Logs and the runs' outputs go to $OUT (default ./device-out).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, numpy, scipy, PIL; print('torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'pillow', PIL.__version__)"
  timeout 150 python3 -m pytest -q -p no:cacheprovider --noconftest tests/metrics/test_metrics_cuda.py tests/metrics/test_metrics_search.py
  timeout 60 python3 -m benchmarks.speed_suite --kinds synthetic --device cuda --skip-references --skip-memory \
    --cases 1000 --batch 1000 --repeats 5
} > "$OUT/metrics.log" 2>&1
tail -n 30 "$OUT/metrics.log"
timeout "${TRAIN_BUDGET:-300}" python3 -m benchmarks.reduced_protocol train --cases .device/kvasir-seg \
  --image-size 256 --epochs "${EPOCHS:-10}" --max-time "${MAX_TIME:-18}" --out "$OUT" > "$OUT/train.log" 2>&1
echo "train exit $?"
grep -v -i warn "$OUT/train.log" | tail -n 20
