#!/usr/bin/env bash
# A new voice from a few clips: a mel FSDD base trained without one speaker, fine-tuned on 50 (or 400) clips of
# that speaker, full or LoRA, and scored by a speaker judge, a digit judge and FD to the speaker's held-out clips.
#   bash recipes/fsdd_speaker/run.sh [--stage N] [--stop-stage M]
# Stages: 1 prepare  2 train the base  3 train the judges  4 fine-tune (full / LoRA x 50 / 400 clips)
#         5 generate 10 clips per digit from the base and each fine-tune  6 score (results.md)
# Settings (environment): SPEAKER (yweweler), BASE_STEPS (4000), FT_SECONDS (300, the fine-tune budget),
# FT_STEPS (700), LORA_LR (5e-4, the LoRA fine-tunes' learning rate), THREADS (2), RUN (runs/fsdd_speaker),
# BASE (the run the fine-tunes start from: $RUN/base, or a shipped base's name: BASE=digits), FT_RUNS (which
# fine-tunes stage 4 makes: "full_50 lora_50 full_400 lora_400").
# The shipped speech base (audiodiff/bases/digits) is stage 2's base, exported by recipes/bases/run.sh; its model
# card's fine-tune row: BASE=digits FT_SECONDS=120 FT_RUNS=full_50 bash recipes/fsdd_speaker/run.sh --stage 3
# GPU: BASE_STEPS=20000 FT_SECONDS=60 (device=auto).
GENERATE_STAGE=""  # its generation settings are fixed (stage 5): generate.* arguments are refused
source "$(dirname "$0")/../args.sh"
DATA=${AUDIODIFF_DATA:-../shared/data}/fsdd
SPEAKER=${SPEAKER:-yweweler}; BASE_STEPS=${BASE_STEPS:-4000}; FT_SECONDS=${FT_SECONDS:-300}; FT_STEPS=${FT_STEPS:-700}; LORA_LR=${LORA_LR:-5e-4}
RUN=${RUN:-runs/fsdd_speaker}; M=$RUN/data; BASE=${BASE:-$RUN/base}; FT_RUNS=${FT_RUNS:-full_50 lora_50 full_400 lora_400}
TAG=""; [ "$BASE" != "$RUN/base" ] && TAG="_from_$(basename "$BASE")"  # fine-tunes of another base: their own folders
export OMP_NUM_THREADS=${THREADS:-2}
DIGITS="[$(python -c 'print(",".join(str(d) for d in range(10) for _ in range(10)))')]"
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "== stage 1: manifests into $M (base without $SPEAKER; $SPEAKER's 50 / 400 / held-out clips)"
  python recipes/fsdd_speaker/prepare.py "$DATA" "$M" --speaker "$SPEAKER"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "== stage 2: base model ($RUN/base)"
  $AD train experiment=fsdd_mel run_dir="$RUN/base" data.manifest="$M/base.jsonl" train.steps="$BASE_STEPS" \
      train.ckpt_every=250 "${extra[@]}"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "== stage 3: digit and speaker judges (trained on every clip but $SPEAKER's held-out ones)"
  # The speakers were recorded at levels up to ~18 dB apart (yweweler at -38 dBFS, the model's data at -20): with
  # the default +-6 dB gain augmentation the speaker judge learns the level, not the voice (real yweweler clips
  # normalised to -20 dBFS: 1% attributed to him). +-24 dB makes the level useless to it.
  [ -f "$RUN/judge_label/judge.json" ] || $AD evaluate train-judge data="$M/judge.jsonl" label=label sample_rate=auto \
      out="$RUN/judge_label"
  [ -f "$RUN/judge_speaker/judge.json" ] || $AD evaluate train-judge data="$M/judge.jsonl" label=speaker sample_rate=auto \
      gain_db=24 out="$RUN/judge_speaker"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "== stage 4: fine-tune $BASE on $SPEAKER ($FT_SECONDS s each: $FT_RUNS)"
  for m in $FT_RUNS; do
    n=${m#*_}; lora=(); lr=5e-4
    [ "${m%%_*}" = lora ] && { lora=('train.lora={rank:8,alpha:16}'); lr=$LORA_LR; }
    $AD finetune data.manifest="$M/new_$n.jsonl" data.valid_fraction=0 train.init_from="$BASE" \
        run_dir="$RUN/$m$TAG" train.steps="$FT_STEPS" train.lr="$lr" train.warmup_steps=50 \
        train.max_seconds="$FT_SECONDS" train.ckpt_every=100 train.num_workers="${WORKERS:-0}" "${lora[@]}"
  done
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  echo "== stage 5: 10 clips per digit from each model"
  for m in base $FT_RUNS; do
    run=$RUN/$m$TAG; [ "$m" = base ] && run=$BASE
    $AD generate run="$run" n=100 labels="$DIGITS" guidance=2.0 steps=25 seed=0 batch_size=50 \
        out="$RUN/samples/$m$TAG" overwrite=true
  done
fi
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  echo "== stage 6: score"
  folders=(); for m in base $FT_RUNS; do folders+=("$m$TAG=$RUN/samples/$m$TAG"); done
  python recipes/score_fewshot.py --label-judge "$RUN/judge_label" --who-judge "$RUN/judge_speaker" \
      --who "$SPEAKER" --held "$M/new_held.jsonl" --reference "$M/new_400.jsonl" --out "$RUN/results$TAG.json" --loudness-db -20 \
      "${folders[@]}" | tee "$RUN/results$TAG.md"
fi
echo "done in $(( $(date +%s) - t0 )) s"
