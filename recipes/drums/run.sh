#!/usr/bin/env bash
# Drum hits: class-conditional waveform diffusion, judged by a drum-class classifier.
NAME=drums; DATA=${AUDIODIFF_DATA:-../shared/data}/drums; N=17; LABEL_FIELD=label
LABELS="[$(python -c 'import json,sys; print(",".join(sorted({json.loads(l)["label"] for l in open(sys.argv[1])})))' "$DATA/manifest.jsonl")]"
source "$(dirname "$0")/../common.sh"
