#!/usr/bin/env bash
# Fine-tune a trained run on a folder of your own audio:
#   BASE=runs/tones DATA=my_wavs bash recipes/custom/run.sh                                 # full fine-tune
#   BASE=runs/tones DATA=my_wavs bash recipes/custom/run.sh 'train.lora={rank:8,alpha:16}'  # LoRA adapters
NAME=custom; DATA=${DATA:?set DATA=<folder of audio>}; N=${N:-8}; LABELS=${LABELS:-null}
BASE=${BASE:?set BASE=<trained run directory to start from>}
set -- "$@" train.init_from="$BASE"
source "$(dirname "$0")/../common.sh"
