#!/usr/bin/env bash
# GPU check of the selective scan: pallas against reference at the paper's shapes (forward and
# gradients), a sweep of kernel configurations, then the benchmark. Logs and JSON go to $1.
# Runs from the repository root with PYTHONPATH=. (the GPU machine installs nothing); carry
# .whl/ to have the peer kernel (jax-linear-attention) and ml_collections (for TRAIN=1) installed
# from there. Budget (H200, 2026-12-04): about 3 minutes; TUNE=1 BACKBONE=1 about 8; TRAIN=1
# more than 4 minutes per backbone (init and compile at the paper's size): give it its own call.
#   bash benchmarks/gpu_check.sh OUT_DIR     (TUNE=1: kernel sweep; BACKBONE=1: backbone and SSD;
#                                             TRAIN=1: paper-size pretraining step benchmark;
#                                             EVAL=1: feature extraction and predict.py
#                                             throughput)
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
status=0
check_limit=$([ -n "${TUNE:-}" ] && echo 330 || echo 200)
timeout $check_limit python3 benchmarks/scan_check.py --out "$out/scan_check.json" ${TUNE:+--tune} \
  2>&1 | tee "$out/scan_check.log" || status=1
timeout 240 python3 benchmarks/scan.py --out "$out/scan.json" 2>&1 | tee "$out/scan.log" \
  || status=1
if [ -n "${BACKBONE:-}" ]; then  # the backbone benchmark and Hydra's SSD scan (minutes more)
  timeout 300 python3 benchmarks/backbone.py --out "$out/backbone.json" 2>&1 \
    | tee "$out/backbone.log" || status=1
  timeout 150 python3 benchmarks/ssd.py --out "$out/ssd.json" 2>&1 | tee "$out/ssd.log" \
    || status=1
  # one block of each kind and its parts; the depthwise convs grouped vs shifted adds (issue 19)
  timeout 150 python3 benchmarks/backbone.py --parts --batch 64 --out "$out/parts.json" 2>&1 \
    | tee "$out/parts.log" || status=1
fi
if [ -n "${TRAIN:-}" ]; then  # one DINOv2 step at the paper's size (needs ml_collections in .whl/)
  timeout 300 python3 benchmarks/train_step.py --size paper --backbones mvhybrid,vit_12 \
    --out "$out/train_step.json" 2>&1 | tee "$out/train_step.log" || status=1
  # DINOv2's iBOT gather: the same step with the iBOT heads on every patch, side by side.
  timeout 240 python3 benchmarks/train_step.py --size paper --backbones mvhybrid --ibot both \
    --steps 5 --out "$out/train_step_ibot.json" 2>&1 | tee "$out/train_step_ibot.log" || status=1
fi
if [ -n "${EVAL:-}" ]; then  # eval.py's embedding step at the paper's size, then predict.py
  timeout 240 python3 benchmarks/features.py --size paper --out "$out/features.json" 2>&1 \
    | tee "$out/features.log" || status=1
  # predict.py writes AnnData: carry the anndata wheel and its pure-Python needs in .whl/
  timeout 180 python3 benchmarks/predict.py --size paper --out "$out/predict.json" 2>&1 \
    | tee "$out/predict.log" || status=1
fi
echo "gpu_check: $([ $status = 0 ] && echo PASSED || echo FAILED)"
exit $status
