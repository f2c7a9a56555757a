#!/usr/bin/env bash
# Built-in notes recipe (the `make demo` job): needs no download.
#   bash recipes/tones/run.sh [--stage N] [--stop-stage M] [key=value training overrides ...] [generate.key=value ...]
# OUT (default samples/demo, the recipe's own folder, replaced on each run) may name a folder of yours: it must be
# new or empty. Generation: DPM++ 2M, 25 steps, no guidance (the demo's README row), seed 0.
# Stages: 1 prepare (nothing to fetch: notes are rendered on the fly; writes reference notes)
#         2 train a pitch-conditioned waveform model   3 generate one note per pitch   4 evaluate pitch (pYIN)
source "$(dirname "$0")/../args.sh"
RUN=${RUN:-runs/tones}
OVERWRITE=false; [ -z "${OUT:-}" ] && OVERWRITE=true  # only the recipe's own default folder is replaced
OUT=${OUT:-samples/demo}
PITCHES="[60,61,62,63,64,65,66,67,68,69,70,71,72]"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: prepare (reference notes from audiodiff.data.synth)"
  python - <<'PY'
from audiodiff.data.synth import write_synth_dataset
m = write_synth_dataset("runs/tones_reference", n=8, format="wav", sample_rate=8000, seconds=0.25,
                        pitches=range(60, 73), timbres=("sine",), velocity=0.8, seed=0)
print("reference notes:", m)
PY
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train ($RUN)"
  $AD train experiment=tones run_dir="$RUN" "${extra[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: generate one note per pitch into $OUT"
  generate_args run="$RUN" n=13 labels="$PITCHES" steps=25 sampler=dpmpp_2m seed=0 out="$OUT" plot=true \
      overwrite="$OVERWRITE"
  $AD generate "${GEN[@]}"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: evaluate pitch accuracy (pYIN, within 50 cents)"
  $AD evaluate generated="$OUT" out="$OUT/evaluation"
  python - "$OUT" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/evaluation/report.json"))
p = r["pitch"]
n_ok = sum(1 for it in p["items"] if it["correct"])
print(f"{n_ok} of {p['n']} generated notes land within 50 cents of the asked pitch "
      f"(median error {p['median_abs_cents']:.0f} cents, {p['n_unvoiced']} unvoiced)")
PY
fi
echo "done in $(( $(date +%s) - t0 )) s"
