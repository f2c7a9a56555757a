# Stage arguments shared by every recipe's run.sh:
#   [--stage N] [--stop-stage M] [key=value training overrides ...] [generate.key=value generation settings ...]
# Sets $stage, $stop_stage, the arrays $extra (training overrides, for the training stage) and $gen_extra (settings
# of `audiodiff generate`, for the generation stage), then moves to the repository root. An argument reaches the
# stage it belongs to or is refused: training overrides when the run skips the training stage (TRAIN_STAGE, default
# 2), generation settings when it skips the generation stage (GENERATE_STAGE, default 3; empty: the recipe takes
# none). A recipe sets both before sourcing this file when its stages are numbered otherwise.
set -euo pipefail
stage=1; stop_stage=4; extra=(); gen_extra=()
TRAIN_STAGE=${TRAIN_STAGE-2}; GENERATE_STAGE=${GENERATE_STAGE-3}
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    generate.*=*) gen_extra+=("${1#generate.}"); shift ;;
    -*) echo "$0: error: unknown option $1; allowed: --stage N, --stop-stage M, key=value (training), generate.key=value" >&2; exit 2 ;;
    *=*) extra+=("$1"); shift ;;
    *) echo "$0: error: $1 is not key=value; allowed: --stage N, --stop-stage M, key=value (training), generate.key=value" >&2; exit 2 ;;
  esac
done
runs_stage() { [ -n "$1" ] && [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
if [ ${#extra[@]} -gt 0 ] && ! runs_stage "$TRAIN_STAGE"; then
  echo "$0: error: ${extra[*]}: key=value arguments are training overrides for stage ${TRAIN_STAGE:-none}, which" \
       "--stage $stage --stop-stage $stop_stage does not run; generation settings are written generate.<key>=<value>" \
       "(e.g. generate.n=10 generate.steps=5)" >&2
  exit 2
fi
if [ ${#gen_extra[@]} -gt 0 ] && ! runs_stage "$GENERATE_STAGE"; then
  echo "$0: error: ${gen_extra[*]/#/generate.}: generation settings for stage ${GENERATE_STAGE:-none (this recipe" \
       "takes none)}, which --stage $stage --stop-stage $stop_stage does not run" >&2
  exit 2
fi
# generate_args KEY=VALUE...: the recipe's generation settings, each replaced by the user's generate.KEY= when given,
# then the user's other generate.* settings (audiodiff generate checks them all)
generate_args() {
  local kv u k found
  GEN=()
  for kv in "$@"; do
    found=""
    for u in "${gen_extra[@]}"; do [ "${u%%=*}" = "${kv%%=*}" ] && found=$u; done
    GEN+=("${found:-$kv}")
  done
  for u in "${gen_extra[@]}"; do
    found=""
    for kv in "$@"; do [ "${u%%=*}" = "${kv%%=*}" ] && found=1; done
    [ -z "$found" ] && GEN+=("$u")
  done
  return 0
}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
AD="python -m audiodiff"
t0=$(date +%s)
