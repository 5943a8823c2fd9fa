# The device checks, as run on a GPU machine (see README, "Speed"): CUDA equals CPU, then speed.
# DRIVE's masks come from $MEDSEG_EVAL_TEST_DATA where ../shared/data is not beside the checkout.
set -x
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, numpy, scipy; print(torch.__version__, numpy.__version__, scipy.__version__)"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_metrics_cuda.py 2>&1 | tail -25
timeout 200 python3 -m benchmarks.metrics_speed --device cuda --skip-references --cases 1000 --batch 1000 --repeats 5
timeout 100 python3 -m benchmarks.metrics_speed --device cuda --skip-references --data drive --repeats 5
