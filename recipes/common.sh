# Shared stage driver for the manifest recipes. A recipe's run.sh sets:
#   NAME (recipe folder and run name), EXPERIMENT (configs/experiment/<name>; default NAME), DATA (folder of the recordings), LABELS (generate list), LABEL_FIELD (judge; optional)
# and sources this file. Usage: run.sh [--stage N] [--stop-stage M] [key=value training overrides ...]
#   [generate.key=value ...]. OUT (default $RUN/samples, the recipe's own folder, replaced on each run) may name a
# folder of yours: it must be new or empty (never deleted or overwritten, as `audiodiff generate` refuses it).
# Generation: DPM++ 2M, 25 steps, guidance GUIDANCE (2.0, as the READMEs' tables), seed 0.
source "$(dirname "${BASH_SOURCE[0]}")/args.sh"
RUN=${RUN:-runs/$NAME}
OVERWRITE=false; [ -z "${OUT:-}" ] && OVERWRITE=true  # only the recipe's own default folder is replaced
OUT=${OUT:-$RUN/samples}
MANIFEST=${MANIFEST:-$RUN/data/manifest.jsonl}
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: prepare $MANIFEST from $DATA"
  python "recipes/$NAME/prepare.py" "$DATA" "$MANIFEST"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: train $RUN"
  $AD train experiment="${EXPERIMENT:-$NAME}" run_dir="$RUN" data.manifest="$MANIFEST" "${extra[@]}"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: generate into $OUT"
  generate_args run="$RUN" n="${N:-20}" labels="$LABELS" steps=25 sampler=dpmpp_2m guidance="${GUIDANCE:-2.0}" seed=0 \
      out="$OUT" plot=true batch_size=10 overwrite="$OVERWRITE"
  $AD generate "${GEN[@]}"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: evaluate"
  if [ -n "${LABEL_FIELD:-}" ]; then
    [ -f "$RUN/judge/judge.json" ] || $AD evaluate train-judge data="$MANIFEST" label="$LABEL_FIELD" sample_rate=auto out="$RUN/judge"
    $AD evaluate generated="$OUT" real="$MANIFEST" judge="$RUN/judge" label="$LABEL_FIELD" out="$OUT/evaluation"
  else
    $AD evaluate generated="$OUT" real="$MANIFEST" out="$OUT/evaluation"
  fi
  cat "$OUT/evaluation/report.md"
fi
echo "done in $(( $(date +%s) - t0 )) s"
