#!/usr/bin/env bash
# The prepared GPU run (issue 15): one command, planned to finish within 8 minutes on an H100/H200.
#
#   bash benchmarks/gpu.sh --prepare   here (CPU, online or with ../shared/data): fills .gpu/ (git-ignored) with
#                                      the MNIST test split and the wheels the GPU image lacks (mlxtend)
#   bash benchmarks/gpu.sh             on the GPU machine (carry .gpu/): asserts CUDA, runs the tests marked
#                                      `cuda`, times DCGAN epochs (eager, torch.compile, CUDA graphs), the Trainer
#                                      against the hand loop, and the `full`-profile quality rows; writes the GPU
#                                      sections of benchmarks/RESULTS.md and copies them to $OUT when set
#   bash benchmarks/gpu.sh --dry-run   on a CPU: every step with tiny budgets, nothing written (tests run this)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

if [ "$mode" = "--prepare" ]; then
  data="${GENLAB_DATA_DIR:-../shared/data}"
  mkdir -p .gpu/data/mnist .gpu/wheels
  cp "$data"/mnist/t10k-images-idx3-ubyte.gz "$data"/mnist/t10k-labels-idx1-ubyte.gz .gpu/data/mnist/
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .gpu/wheels "mlxtend>=0.23"
  du -sh .gpu
  exit 0
fi

step() { printf '\n=== %s (%s s elapsed)\n' "$1" "$SECONDS"; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GENLAB_OFFLINE=1 MPLBACKEND=Agg
if [ -d .gpu/wheels ] && ! "$PY" -c "import mlxtend" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/genlab-site .gpu/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/genlab-site"
fi
[ -d .gpu/data ] && export GENLAB_DATA_DIR="${GENLAB_DATA_DIR:-$PWD/.gpu/data}"

if [ "$mode" = "--dry-run" ]; then
  export GENLAB_DEVICE=cpu GENLAB_PROFILE=quick OMP_NUM_THREADS=1
  step "CUDA-marked tests (collected; skipped without a GPU)"
  "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_training.py
  step "DCGAN epoch variants"
  "$PY" benchmarks/gpu_epoch.py --dry-run
  step "Trainer vs hand loop and quality rows"
  "$PY" benchmarks/run.py --dry-run
  step "torchrun: the Trainer through DDP (1 process, gloo)"
  mkdir -p /tmp/genlab-ddp
  "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m genlab.train vae --steps 3 --profile quick \
    --no-resume --out /tmp/genlab-ddp/vae-ddp1.pt
  step "done"
  exit 0
fi

export GENLAB_DEVICE="${GENLAB_DEVICE:-cuda}" GENLAB_PROFILE=full
step "assert CUDA"
"$PY" scripts/assert_cuda.py
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
step "tests marked cuda"
"$PY" -m pytest -q -p no:cacheprovider -m cuda $(grep -l "mark.cuda" tests/*.py)
step "DCGAN seconds per 60k-image epoch"
"$PY" benchmarks/gpu_epoch.py --steps 300
step "Trainer vs hand loop (GPU speed table)"
"$PY" benchmarks/run.py --only speed --steps 200 --repeats 3
step "torchrun: 1 GPU through DDP/NCCL (compare its steps/s with the plain run above)"
mkdir -p /tmp/genlab-ddp
"$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m genlab.train dcgan --steps 300 --profile full \
  --no-resume --log-every 100 --out /tmp/genlab-ddp/dcgan-ddp1.pt
if [ "${GENLAB_GPU_QUALITY:-1}" = "1" ]; then  # GENLAB_GPU_QUALITY=0 skips it when device time is short
  step "quality at the full budget"
  "$PY" benchmarks/run.py --only quality
fi
step "done"
if [ -n "${OUT:-}" ]; then cp benchmarks/RESULTS.md "$OUT/"; fi
