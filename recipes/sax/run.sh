#!/usr/bin/env bash
# Saxophone notes: pitch-conditioned waveform diffusion, scored by pYIN pitch accuracy.
NAME=sax; DATA=${AUDIODIFF_DATA:-../shared/data}/sax; N=13; LABELS="[56,58,60,62,64,65,67,69,70,72,74,76,77]"
source "$(dirname "$0")/../common.sh"
