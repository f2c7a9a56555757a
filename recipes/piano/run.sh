#!/usr/bin/env bash
# Piano notes: pitch-conditioned waveform diffusion, scored by pYIN pitch accuracy.
NAME=piano; DATA=${AUDIODIFF_DATA:-../shared/data}/piano; N=13; LABELS="[60,61,62,63,64,65,66,67,68,69,70,71,72]"
source "$(dirname "$0")/../common.sh"
