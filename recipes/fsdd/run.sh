#!/usr/bin/env bash
# Spoken digits: class-conditional waveform diffusion, judged like DiffWave on SC09.
NAME=fsdd; DATA=${AUDIODIFF_DATA:-../shared/data}/fsdd; N=50; LABEL_FIELD=label
LABELS="[$(python -c 'print(",".join(str(d) for d in range(10) for _ in range(5)))')]"
source "$(dirname "$0")/../common.sh"
