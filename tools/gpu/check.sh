#!/usr/bin/env bash
# Stage 2's GPU checks as one device call (docs/rl.md, "What is measured here"). Here, first:
#   tools/gpu/fetch_wheels.sh
# then the device tool's run with carry [".whl"], timeout_s 540 and the command
#   bash tools/gpu/check.sh
# It installs the carried wheels, records the machine (nvidia-smi, pip list), checks that stage 2 imports, and runs
# benchmarks/bench_rl_step.py on the Qwen3-1.7B shape (random weights, the trainer's own generation, bf16 autocast
# over TRL's float32 weights). Everything it writes lands in $OUT: bench-qwen3-1.7b.json and the logs.
set -uo pipefail
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -m pip list > "$OUT/pip-list.txt" 2>&1
python3 -c "import torch, trl, mtsql.train.rl.trainer; print('torch', torch.__version__, 'trl', trl.__version__)" \
    || exit 1
timeout 420 python3 benchmarks/bench_rl_step.py --shape qwen3-1.7b --steps 3 --prompts 4 --num-generations 5 \
    --max-tokens 256 --max-steps 2 --out /tmp/bench 2>&1 | grep -v -i warn | tee "$OUT/bench-qwen3-1.7b.log" | tail -40
cp /tmp/bench/bench.json "$OUT/bench-qwen3-1.7b.json" 2>/dev/null
