# The device checks, as run on a GPU machine (see README, "Speed"): CUDA equals CPU, then speed.
set -x
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch, numpy, scipy; print(torch.__version__, numpy.__version__, scipy.__version__)"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_metrics_cuda.py 2>&1 | tail -25
timeout 200 python3 -m benchmarks.metrics_speed --device cuda --skip-references --cases 1000 --batch 1000 --repeats 5
