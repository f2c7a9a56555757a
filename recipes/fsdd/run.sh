#!/usr/bin/env bash
# Spoken digits: class-conditional mel diffusion (unet1d_mel_small + Griffin-Lim, experiment=fsdd_mel), judged like
# DiffWave on SC09. The waveform model: EXPERIMENT=fsdd bash recipes/fsdd/run.sh
NAME=fsdd; EXPERIMENT=${EXPERIMENT:-fsdd_mel}; DATA=${AUDIODIFF_DATA:-../shared/data}/fsdd; N=50; LABEL_FIELD=label
LABELS="[$(python -c 'print(",".join(str(d) for d in range(10) for _ in range(5)))')]"
source "$(dirname "$0")/../common.sh"
