#!/usr/bin/env bash
# Every GPU figure shrink claims, on a CUDA machine, in at most 8 minutes: `shrink doctor`, the CUDA tests,
# ResNet-56 steps at batch 64 compiled (CUDA graphs) against eager, ResNet-18 224 px bf16 training fed by the
# JPEG path (both decode choices), ResNet-56 CIFAR trial steps/s at batch 64 in 1 and in 4 concurrent
# processes, ResNet-18 224 px bf16 images/s against the GPU's peak, nvJPEG decoding images/s, and a
# dense/pruned latency pair.
#
#   bash bench/gpu.sh            # from the repository root; PYTHON=... picks the interpreter (default python3)
#
# Needs only torch, torchvision, numpy, pillow, click and pytest: nothing it runs imports Ray, MLflow or
# torch-pruning. Each step runs under `timeout`, capped by what is left of the 8 minutes; a step that fails
# or runs out of time says so and the others still run. Without CUDA it prints one line and exits 0.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

if ! found=$("$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1); then
  echo "bench/gpu.sh: torch does not import with $PYTHON: ${found##*$'\n'}"
  exit 0
fi
read -r torch_version available <<<"${found##*$'\n'}"  # the last line: after any warning
if [[ $available != True ]]; then
  echo "bench/gpu.sh: no CUDA device (torch $torch_version, CUDA available: $available); nothing to measure"
  exit 0
fi

deadline=$((SECONDS + 470))  # 8 minutes, less the shutdown grace of the last step
step() {  # step CAP_S NAME COMMAND...: run COMMAND under a timeout of CAP_S or what is left, whichever is less
  local cap=$1 name=$2 left=$((deadline - SECONDS)) status
  shift 2
  ((left < cap)) && cap=$left
  echo "== $name"
  if ((cap < 5)); then
    echo "$name: skipped, the 8 minutes are spent"
    return
  fi
  timeout -k 5 "$cap" "$@"
  status=$?
  ((status == 124 || status == 137)) && echo "$name: stopped after ${cap} s"
  ((status != 0 && status != 124 && status != 137)) && echo "$name: exit status $status"
}

# The issue's two GPU targets first (compiled ResNet-56 steps >= 3x eager; JPEG-fed ResNet-18 >= 5,000 images/s),
# then the rest; a step past the 8 minutes is skipped and says so.
step 45 "shrink doctor" "$PYTHON" -m shrink doctor
step 100 "CUDA tests" "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts= tests/test_cuda.py
step 120 "resnet56 compiled vs eager steps" "$PYTHON" bench/trial.py --only compiled --case resnet56:64:3x32x32 \
  --rounds 6 --block 20
step 90 "resnet18 fed by the JPEG path" "$PYTHON" bench/imagenet_data.py --skip-cpu --images 1000 --workers 8 \
  --feed-images 6000 --rounds 3
step 45 "trial steps, 1 process" "$PYTHON" bench/gpu.py steps --procs 1 --seconds 10
step 60 "trial steps, 4 processes" "$PYTHON" bench/gpu.py steps --procs 4 --seconds 10
step 60 "resnet18 224 px bf16" "$PYTHON" bench/ddp.py --skip-cpu --gpu-batch 256 --gpu-steps 50
step 30 "nvjpeg" "$PYTHON" bench/gpu.py nvjpeg --seconds 8
step 45 "dense/pruned latency" "$PYTHON" bench/gpu.py latency
echo "bench/gpu.sh: done in ${SECONDS} s"
exit 0
