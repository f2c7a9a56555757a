#!/usr/bin/env bash
# A new instrument from a few notes: a mel sax base trained without one instrument (tenor), fine-tuned on 50 of its
# notes with `finetune.extend_vocab=true` (the new label gets a trained embedding row), full or LoRA, and scored by
# an instrument judge (share judged the new instrument), pYIN pitch accuracy and FD to its held-out notes.
#   bash recipes/sax_instrument/run.sh [--stage N] [--stop-stage M]
# Stages: 1 prepare  2 train the base  3 train the instrument judge  4 fine-tune (full / LoRA)
#         5 generate 2 notes per recorded pitch of the new instrument from the base and each fine-tune  6 score
# Settings (environment): INSTRUMENT (tenor), BASE_STEPS (2400), BASE_SECONDS (1800, the base's budget),
# FT_SECONDS (300, the fine-tune budget), FT_STEPS (1000), LORA_LR (1e-3), THREADS (1), RUN (runs/sax_instrument),
# BASE (the run the fine-tunes start from: $RUN/base, or a shipped base's name: BASE=sax), FT_RUNS ("full lora").
# The shipped music base (audiodiff/bases/sax) is stage 2's base (BASE_STEPS=6000 BASE_SECONDS=3000), exported by
# recipes/bases/run.sh; its model card's fine-tune row: BASE=sax FT_RUNS=full bash recipes/sax_instrument/run.sh --stage 3
# GPU: BASE_STEPS=50000 BASE_SECONDS=3600 FT_SECONDS=60 (device=auto).
GENERATE_STAGE=""  # its generation settings are fixed (stage 5): generate.* arguments are refused
source "$(dirname "$0")/../args.sh"
DATA=${AUDIODIFF_DATA:-../shared/data}/sax
INSTRUMENT=${INSTRUMENT:-tenor}; BASE_STEPS=${BASE_STEPS:-2400}; BASE_SECONDS=${BASE_SECONDS:-1800}
FT_SECONDS=${FT_SECONDS:-300}; FT_STEPS=${FT_STEPS:-1000}; LORA_LR=${LORA_LR:-1e-3}
RUN=${RUN:-runs/sax_instrument}; M=$RUN/data; BASE=${BASE:-$RUN/base}; FT_RUNS=${FT_RUNS:-full lora}
TAG=""; [ "$BASE" != "$RUN/base" ] && TAG="_from_$(basename "$BASE")"  # fine-tunes of another base: their own folders
export OMP_NUM_THREADS=${THREADS:-1}
MODELS=(base $FT_RUNS)
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: manifests into $M (base without $INSTRUMENT; its few-shot and held-out notes)"
  python recipes/sax_instrument/prepare.py "$DATA" "$M" --instrument "$INSTRUMENT"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: base model ($RUN/base)"
  $AD train experiment=sax run_dir="$RUN/base" data.manifest="$M/base.jsonl" train.steps="$BASE_STEPS" \
      train.max_seconds="$BASE_SECONDS" train.ckpt_every=500 "${extra[@]}"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: instrument judge (trained on every note but $INSTRUMENT's held-out ones)"
  # +-24 dB gain augmentation and scoring at the model's -20 dBFS: the judge must not tell instruments by level
  [ -f "$RUN/judge_instrument/judge.json" ] || $AD evaluate train-judge data="$M/judge.jsonl" label=instrument \
      sample_rate=16000 seconds=2.0 gain_db=24 out="$RUN/judge_instrument"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: fine-tune $BASE on $INSTRUMENT ($FT_SECONDS s each: $FT_RUNS)"
  for m in $FT_RUNS; do
    lora=(); lr=5e-4
    [ "$m" = lora ] && { lora=('train.lora={rank:8,alpha:16}'); lr=$LORA_LR; }
    $AD finetune data.manifest="$M/new_train.jsonl" data.valid_fraction=0 train.init_from="$BASE" \
        finetune.extend_vocab=true run_dir="$RUN/$m$TAG" train.steps="$FT_STEPS" train.lr="$lr" train.warmup_steps=50 \
        train.max_seconds="$FT_SECONDS" train.ckpt_every=100 train.num_workers=0 "${lora[@]}"
  done
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: 2 notes per recorded pitch of $INSTRUMENT from each model"
  PITCHES=$(python -c "import json; p = json.load(open('$M/pitches.json')); print(json.dumps(p + p).replace(' ', ''))")
  n=$(python -c "import json; print(len(json.loads('$PITCHES')))")
  for m in "${MODELS[@]}"; do
    # the base never saw the label: it is asked for its nearest instrument by range (alto) as the 'before' row
    label=$INSTRUMENT; run=$RUN/$m$TAG; [ "$m" = base ] && { label=${BASE_LABEL:-alto}; run=$BASE; }
    $AD generate run="$run" n="$n" labels="$label" pitch="$PITCHES" guidance=2.0 steps=25 seed=0 batch_size=22 \
        out="$RUN/samples/$m$TAG" overwrite=true
  done
fi
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: score"
  folders=(); for m in "${MODELS[@]}"; do folders+=("$m$TAG=$RUN/samples/$m$TAG"); done
  python recipes/score_fewshot.py --who-judge "$RUN/judge_instrument" --who "$INSTRUMENT" --pitch \
      --held "$M/new_held.jsonl" --reference "$M/new_train.jsonl" --out "$RUN/results$TAG.json" --loudness-db -20 \
      "${folders[@]}" | tee "$RUN/results$TAG.md"
fi
echo "done in $(( $(date +%s) - t0 )) s"
