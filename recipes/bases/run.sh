#!/usr/bin/env bash
# The bases that ship in audiodiff/bases/: trained, exported and measured here.
#   bash recipes/bases/run.sh [--stage N] [--stop-stage M]
# Stages: 1 train the speech base (recipes/fsdd_speaker stage 1-2: 4 of the 5 FSDD speakers, fsdd_mel, 4,000 steps)
#         2 train the music base (recipes/sax_instrument stage 1-2: alto, baritone and soprano sax notes, 6,000 steps)
#         3 export both (int8 EMA weights, meta, mel contract; the model card README.md kept)
#         4 measure each base as shipped: 20 clips per digit / 2 notes per recorded pitch and instrument, DPM++ 2M,
#           25 steps, guidance 2, seed 0, scored by the recipes' judges (+ pYIN pitch); writes runs/bases/*/evaluation
#         5 measure fine-tuning each base as shipped: a new voice from 50 clips (FT_SECONDS_SPEECH, 120 s) and a new
#           instrument (tenor) from 50 notes (FT_SECONDS_MUSIC, 300 s): recipes/fsdd_speaker and sax_instrument with
#           BASE=digits / BASE=sax
# Settings (environment): THREADS (1 per training; the numbers in the model cards ran alone on a 2-core CPU).
GENERATE_STAGE=""
source "$(dirname "$0")/../args.sh"
export OMP_NUM_THREADS=${THREADS:-1}
SPEECH=runs/fsdd_speaker; MUSIC=runs/sax_instrument; OUT=runs/bases
if runs_stage 1; then
  echo "== stage 1: speech base ($SPEECH/base)"
  THREADS=$OMP_NUM_THREADS BASE_STEPS=4000 bash recipes/fsdd_speaker/run.sh --stage 1 --stop-stage 2 "${extra[@]}"
fi
if runs_stage 2; then
  echo "== stage 2: music base ($MUSIC/base)"
  THREADS=$OMP_NUM_THREADS BASE_STEPS=6000 BASE_SECONDS=3000 bash recipes/sax_instrument/run.sh --stage 1 --stop-stage 2 \
      "${extra[@]}"
fi
if runs_stage 3; then
  echo "== stage 3: export audiodiff/bases/digits and audiodiff/bases/sax"
  python - <<'PY'
from audiodiff.runs.export import export_base
# both decode with PGHI and no Griffin-Lim iterations: on the same 200 seeds, equal accuracy and a lower FD than
# the runs' Griffin-Lim-32 (digits 40.7 vs 67.5, sax 60.0 vs 71.4; the cards, "Measured quality")
PGHI = {"name": "griffinlim", "init": "pghi", "n_iter": 0}
for run, name in (("runs/fsdd_speaker/base", "digits"), ("runs/sax_instrument/base", "sax")):
    print("exported", export_base(run, name, overwrite=True, vocoder=PGHI))
PY
fi
if runs_stage 4; then
  echo "== stage 4: each base as shipped"
  THREADS=$OMP_NUM_THREADS bash recipes/fsdd_speaker/run.sh --stage 3 --stop-stage 3   # the digit and speaker judges
  THREADS=$OMP_NUM_THREADS bash recipes/sax_instrument/run.sh --stage 3 --stop-stage 3  # the instrument judge
  DIGITS="[$(python -c 'print(",".join(str(d) for d in range(10) for _ in range(20)))')]"
  $AD generate run=digits n=200 labels="$DIGITS" guidance=2.0 steps=25 seed=0 batch_size=50 out="$OUT/digits" \
      overwrite=true
  $AD evaluate generated="$OUT/digits" real="$SPEECH/data/base.jsonl" judge="$SPEECH/judge_label" \
      out="$OUT/digits/evaluation"
  read -r INSTR PITCH N < <(python - "$MUSIC/data/base.jsonl" <<'PY'
import json, sys
from audiodiff.data.manifest import read_manifest
notes = sorted({(e["instrument"], e["pitch"]) for e in read_manifest(sys.argv[1])})
instr, pitch = [i for i, _ in notes for _ in range(2)], [p for _, p in notes for _ in range(2)]
print(json.dumps(instr).replace(" ", ""), json.dumps(pitch).replace(" ", ""), len(instr))
PY
)
  $AD generate run=sax n="$N" labels="$INSTR" pitch="$PITCH" guidance=2.0 steps=25 seed=0 batch_size=32 out="$OUT/sax" \
      overwrite=true
  $AD evaluate generated="$OUT/sax" real="$MUSIC/data/judge.jsonl" judge="$MUSIC/judge_instrument" label=instrument \
      out="$OUT/sax/evaluation"
fi
if runs_stage 5; then
  echo "== stage 5: fine-tuning each base as shipped"
  THREADS=$OMP_NUM_THREADS BASE=digits FT_SECONDS=${FT_SECONDS_SPEECH:-120} FT_RUNS=full_50 \
      RUN=$SPEECH bash recipes/fsdd_speaker/run.sh --stage 4 --stop-stage 6
  THREADS=$OMP_NUM_THREADS BASE=sax FT_SECONDS=${FT_SECONDS_MUSIC:-300} FT_RUNS=full \
      RUN=$MUSIC bash recipes/sax_instrument/run.sh --stage 4 --stop-stage 6
fi
echo "done in $(( $(date +%s) - t0 )) s"
