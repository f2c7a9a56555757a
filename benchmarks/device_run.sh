#!/usr/bin/env bash
# One call on a lent GPU that measures everything the networks and vocoder issues still need, in priority
# order, each step in its own time box (a slow or failing step cannot eat the others), logs and JSON under $OUT.
#
# Prepare on the CPU machine, once per session (downloads ~10 MB of wheels, copies ~40 MB of data; both ignored):
#   bash benchmarks/device_run.sh --prepare
# Then one device call (the targets are stated for an H200; on an H100 UNetV0's batch of 16 may not fit):
#   run(command="bash benchmarks/device_run.sh", carry=[".whl", ".devdata"], kind="nvidia-h200", timeout_s=480)
# Proof of run on a CPU (tiny shapes, same code paths, ~3 min):
#   DRY=1 bash benchmarks/device_run.sh
# Rerun only some steps (e.g. after a failure): STEPS="vocoder_train vocoder_quality" bash benchmarks/device_run.sh
#
# Steps (seconds allowed):                                                        budget
#   0 env: GPU, torch, the two ceilings (bf16 matmul, device copy)                   30
#   1 networks: unet1d_large, unet2d_base + UNetV0 + UNet2DModel, B=16 (issue 3)     200
#   2 vocoder speed: ours vs Vocos, DiffWave, torchaudio GL; batch 16 x 10 s (6)      90
#   3 neural vocoder, GAN on, ljspeech_mini, train.max_seconds then held-out quality  150 + 45
#   4 data loader throughput with the host's cores (issue 4's comparison)             40
#   5 networks again under torch.compile (inductor), ours only                       150
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${1:-}" = "--prepare" ]; then
  set -e
  PEERS=1 ../shared/device/fetch-wheels.sh .whl
  # Vocos imports encodec at import time; DiffWave ships as a source package: build both as wheels
  python3 -m pip wheel -q --no-deps -w .whl encodec==0.1.1 diffwave==0.1.7
  # diffusers and vocos import huggingface_hub, which the device image lacks: the pair tested on CPU here
  # (diffusers 0.35.2 + huggingface_hub 0.36.2) and hub's own imports, as Python 3.12 wheels
  rm -f .whl/diffusers-*.whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl diffusers==0.35.2 huggingface_hub==0.36.2 pyyaml requests urllib3 idna certifi \
    charset_normalizer packaging filelock fsspec typing_extensions
  rm -rf .devdata && mkdir -p .devdata
  for d in ljspeech_mini fsdd piano; do cp -r ../shared/data/$d .devdata/; done
  du -sh .whl .devdata
  exit 0
fi

OUT=${OUT:-/tmp/device_run_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DRY=${DRY:-0}
if [ -d .whl ] && [ "$DRY" = 0 ]; then
  if ! $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > "$OUT/install.log" 2>&1; then
    echo "pip install of .whl failed (tail below); unpacking the wheels instead (a wheel is a zip of its files)"
    tail -3 "$OUT/install.log"
    for w in .whl/*.whl; do $PY -m zipfile -e "$w" /tmp/site; done
  fi
  export PYTHONPATH=/tmp/site:$ROOT
else
  export PYTHONPATH=${PEERS_SITE:-/tmp/peers}:$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
DATA=$ROOT/.devdata
[ -d "$DATA" ] || DATA=$ROOT/../shared/data
export AUDIODIFF_DATA=$DATA
STATUS=()

STEPS=${STEPS:-env networks vocoder_speed vocoder_train vocoder_quality data networks_compile}

step() {  # step NAME SECONDS command...: run with a time limit, log to $OUT/NAME.log, keep going on failure
  local name=$1 limit=$2; shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0;; esac
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  STATUS+=("$name rc=$rc $((SECONDS - t0))s")
  echo "   rc=$rc in $((SECONDS - t0)) s"
}

if [ "$DRY" = 1 ]; then
  NET=(--tiny --presets unet1d_small,unet2d_small --iters 1 --sample-iters 1)
  VOC=(--batch 1 --seconds 1 --repeats 1 --diffusion-steps 2 --max-utts 1)
  TRAIN=(vocoder.dim=32 vocoder.intermediate_dim=64 vocoder.num_layers=1 data.batch_size=2 data.segment_frames=16
         data.num_workers=0 train.max_seconds=20 train.discriminator.mpd_channels=[4,8]
         train.discriminator.mrd_channels=4 train.device=cpu)
  DATA_ARGS=(--datasets synth --workers 0 --batches 2)
  T_NET=300 T_VOC=300 T_TRAIN=120 T_COMPILE=400
else
  NET=(--presets unet1d_large,unet2d_base)
  VOC=(--batch 16 --seconds 10 --repeats 3 --diffusion-steps 6 8)
  TRAIN=(data.num_workers=8 train.max_seconds=150 train.log_every=50 train.ckpt_every=100000 train.valid_every=100000)
  DATA_ARGS=(--datasets fsdd,piano,synth --workers 0,4,8,16 --batches 20)
  T_NET=200 T_VOC=90 T_TRAIN=180 T_COMPILE=150
fi

step env 30 $PY - <<'PY'
import json, sys, torch
sys.path.insert(0, "benchmarks")
from networks import matmul_ceiling, timed   # the networks step reports its rows against the same ceiling
r = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
if torch.cuda.is_available():
    dev = torch.device("cuda")
    r["gpu"] = torch.cuda.get_device_name()
    r["bf16_matmul_tflops"] = matmul_ceiling(dev)
    x = torch.randn(2 ** 28, device=dev)          # 1 GiB float32: bytes read + written per copy
    r["copy_GB_per_s"] = round(2 * x.numel() * 4 / timed(lambda: x.clone(), dev, 3, 20) / 1e9, 1)
print(json.dumps(r))
PY
[ -f "$OUT/env.log" ] && cat "$OUT/env.log"

step networks "$T_NET" $PY benchmarks/networks.py "${NET[@]}" --out "$OUT/networks.json"
step vocoder_speed "$T_VOC" $PY benchmarks/vocoders.py --data "$DATA" --datasets ljspeech_mini "${VOC[@]}" \
  --no-pesq --out "$OUT/vocoders.json"
rm -rf /tmp/device_voc
step vocoder_train "$T_TRAIN" $PY -m audiodiff.training.vocoder configs/experiment/ljspeech_vocoder.yaml \
  run_dir=/tmp/device_voc train.progress=false "${TRAIN[@]}"
if [ -d /tmp/device_voc/vocoder ]; then
  mkdir -p "$OUT/vocoder_run" && cp -r /tmp/device_voc/vocoder /tmp/device_voc/tb /tmp/device_voc/config.yaml "$OUT/vocoder_run/"
  step vocoder_quality 45 $PY benchmarks/vocoders.py --data "$DATA" --datasets ljspeech_mini \
    --neural /tmp/device_voc/vocoder --no-speed-table --no-pesq --out "$OUT/vocoder_quality.json"
fi
step data 40 $PY benchmarks/data.py --shared "$DATA" "${DATA_ARGS[@]}" --out "$OUT/data.json"
step networks_compile "$T_COMPILE" $PY benchmarks/networks.py "${NET[@]}" --peers none --compile --no-target-flops \
  --out "$OUT/networks_compile.json"

echo
echo "================ summary ================"
printf '%s\n' "${STATUS[@]}"
for f in networks vocoder_speed vocoder_train vocoder_quality data networks_compile; do
  [ -f "$OUT/$f.log" ] || continue
  echo "---- $f (tail)"
  case $f in
    networks*) sed -n '/^\[train_step\]/,$p' "$OUT/$f.log" | cut -c1-220 ;;
    vocoder_train) grep -E "valid|max_seconds|trained steps|Error|error" "$OUT/$f.log" | tail -6 ;;
    *) tail -n 14 "$OUT/$f.log" | cut -c1-220 ;;
  esac
done
