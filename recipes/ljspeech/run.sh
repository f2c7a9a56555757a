#!/usr/bin/env bash
# LJSpeech vocoder recipe: 1 prepare (manifest), 2 train (Vocos-style neural vocoder), 3 resynthesise held-out
# utterances to WAV, 4 evaluate (benchmarks/vocoders.py: speed + quality vs Griffin-Lim, JSON).
#
#   recipes/ljspeech/run.sh [--data DIR] [--run DIR] [--stage A] [--stop-stage B] [--cpu] [--diffusion]
#
# --data: an LJSpeech-1.1 folder (wavs/, metadata.csv) or a folder that already has manifest.jsonl
#         (default: ../shared/data/ljspeech_mini, 32 utterances). --cpu: the small CPU setting of README.md.
# --diffusion: also train the diffusion vocoder (configs/experiment/ljspeech_diffusion_vocoder.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
DATA=../shared/data/ljspeech_mini
RUN=runs/ljspeech_vocoder
STAGE=1
STOP=4
CPU=0
DIFF=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2;;
    --run) RUN=$2; shift 2;;
    --stage) STAGE=$2; shift 2;;
    --stop-stage) STOP=$2; shift 2;;
    --cpu) CPU=1; shift;;
    --diffusion) DIFF=1; shift;;
    *) echo "unknown option $1; allowed: --data --run --stage --stop-stage --cpu --diffusion" >&2; exit 2;;
  esac
done
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
MANIFEST=$RUN/manifest.jsonl

if [ "$STAGE" -le 1 ] && [ "$STOP" -ge 1 ]; then
  mkdir -p "$RUN"
  if [ -f "$DATA/manifest.jsonl" ]; then  # re-written here with absolute paths
    $PY -c "import sys; from audiodiff.data.manifest import read_manifest as r, write_manifest as w; w(r(sys.argv[1]), sys.argv[2])" \
      "$DATA/manifest.jsonl" "$MANIFEST"
  else $PY recipes/ljspeech/prepare.py "$DATA" "$MANIFEST"; fi
fi

if [ "$STAGE" -le 2 ] && [ "$STOP" -ge 2 ]; then
  if [ "$CPU" = 1 ]; then
    # small CPU run (README.md): reconstruction losses only, 2 x 3000 steps, 1 thread
    CPU_ARGS=(vocoder.dim=192 vocoder.intermediate_dim=576 vocoder.num_layers=6 data.batch_size=8
              data.num_workers=0 train.lr=1e-3 train.device=cpu
              train.loss_weights.adv=0 train.loss_weights.fm=0 train.log_every=50 train.ckpt_every=500 train.progress=false)
    OMP_NUM_THREADS=1 $PY -m audiodiff.training.vocoder configs/experiment/ljspeech_vocoder.yaml \
      run_dir="$RUN" data.manifest="$MANIFEST" data.segment_frames=32 train.steps=3000 "${CPU_ARGS[@]}"
    OMP_NUM_THREADS=1 $PY -m audiodiff.training.vocoder configs/experiment/ljspeech_vocoder.yaml \
      run_dir="$RUN" data.manifest="$MANIFEST" data.segment_frames=64 train.steps=6000 "${CPU_ARGS[@]}"
  else
    $PY -m audiodiff.training.vocoder configs/experiment/ljspeech_vocoder.yaml run_dir="$RUN" data.manifest="$MANIFEST"
  fi
  if [ "$DIFF" = 1 ]; then
    $PY -m audiodiff.training.vocoder configs/experiment/ljspeech_diffusion_vocoder.yaml \
      run_dir="${RUN}_diffusion" data.manifest="$MANIFEST"
  fi
fi

if [ "$STAGE" -le 3 ] && [ "$STOP" -ge 3 ]; then
  $PY recipes/ljspeech/resynth.py "$MANIFEST" "$RUN/vocoder" "$RUN/samples" --n 4
fi

if [ "$STAGE" -le 4 ] && [ "$STOP" -ge 4 ]; then
  EXTRA=()
  [ "$DIFF" = 1 ] && EXTRA=(--diffusion "${RUN}_diffusion/vocoder")
  [ "$CPU" = 1 ] && EXTRA+=(--batch 2 --threads 1)
  $PY benchmarks/vocoders.py --datasets ljspeech_mini --neural "$RUN/vocoder" "${EXTRA[@]}" --out "$RUN/benchmark.json"
fi
