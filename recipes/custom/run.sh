#!/usr/bin/env bash
# Your own audio, end to end: a folder of recordings (WAV, FLAC, OGG, MP3; class labels from sub-folder names) to a
# trained or fine-tuned model, generated clips and their evaluation.
#   DATA=my_wavs bash recipes/custom/run.sh                         # from scratch (settings chosen from the data)
#   DATA=my_wavs BASE=digits bash recipes/custom/run.sh             # fine-tune a shipped base (or BASE=runs/<run>)
#   DATA=my_wavs BASE=digits bash recipes/custom/run.sh 'train.lora={rank:8,alpha:16}'    # LoRA adapters
# Stages: 1 prepare (audiodiff prepare: the manifest, and what was left out and why)  2 train / finetune
#         3 generate N clips per class (guidance GUIDANCE, 2.0)  4 evaluate (a judge trained on your labels)
# Settings (environment): DATA (required), BASE, RUN (runs/<folder>, or runs/<folder>_from_<base>), N (4 per class),
# GUIDANCE (2.0), OUT ($RUN/samples: the recipe's own folder; a folder of yours must be new or empty).
# Arguments: [--stage N] [--stop-stage M] [key=value training overrides ...] [generate.key=value ...]
source "$(dirname "$0")/../args.sh"
DATA=${DATA:?set DATA=<folder of your recordings>}
BASE=${BASE:-}
name=$(basename "$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")")
RUN=${RUN:-runs/$name${BASE:+_from_$(basename "$BASE")}}
MANIFEST=${MANIFEST:-$RUN/data/manifest.jsonl}
OVERWRITE=false; [ -z "${OUT:-}" ] && OVERWRITE=true  # only the recipe's own default folder is replaced
OUT=${OUT:-$RUN/samples}
if runs_stage 1; then
  echo "== stage 1: prepare $MANIFEST from $DATA"
  $AD prepare source="$DATA" out="$MANIFEST"
fi
if runs_stage 2; then
  if [ -n "$BASE" ]; then
    echo "== stage 2: fine-tune $BASE on $MANIFEST into $RUN"
    $AD finetune data.manifest="$MANIFEST" train.init_from="$BASE" run_dir="$RUN" "${extra[@]}"
  else
    echo "== stage 2: train $RUN on $MANIFEST (settings chosen from the data, logged before the first step)"
    $AD train data.manifest="$MANIFEST" run_dir="$RUN" "${extra[@]}"
  fi
fi
# the classes the model was trained on, N clips each (none: N clips of an unconditional model)
LABELS=$(python - "$RUN" "${N:-4}" <<'PY'
import json, sys
from audiodiff.runs.checkpoint import load_checkpoint
try:
    meta = load_checkpoint(sys.argv[1], train_state=False)["meta"]
except Exception:
    print("null"); sys.exit()
n, vocab = int(sys.argv[2]), meta.get("vocab") or []
print(json.dumps([v for v in vocab for _ in range(n)]).replace(" ", "") if vocab else "null")
PY
)
COUNT=$(python -c "import json,sys; v=json.loads(sys.argv[1]); print(len(v) if v else int(sys.argv[2]))" "$LABELS" "${N:-4}")
if runs_stage 3; then
  echo "== stage 3: generate $COUNT clips into $OUT"
  generate_args run="$RUN" n="$COUNT" labels="$LABELS" steps=25 sampler=dpmpp_2m guidance="${GUIDANCE:-2.0}" seed=0 \
      out="$OUT" plot=true batch_size=16 overwrite="$OVERWRITE"
  $AD generate "${GEN[@]}"
fi
if runs_stage 4; then
  echo "== stage 4: evaluate"
  if [ "$LABELS" != null ]; then
    [ -f "$RUN/judge/judge.json" ] || $AD evaluate train-judge data="$MANIFEST" label=label sample_rate=auto \
        out="$RUN/judge"
    $AD evaluate generated="$OUT" real="$MANIFEST" judge="$RUN/judge" label=label out="$OUT/evaluation"
  else
    $AD evaluate generated="$OUT" real="$MANIFEST" out="$OUT/evaluation"
  fi
  cat "$OUT/evaluation/report.md"
fi
echo "done in $(( $(date +%s) - t0 )) s"
