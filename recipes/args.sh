# Stage arguments shared by every recipe's run.sh:  [--stage N] [--stop-stage M] [key=value overrides ...]
# Sets $stage, $stop_stage and the array $extra (training overrides), then moves to the repository root.
set -euo pipefail
stage=1; stop_stage=4; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
AD="python -m audiodiff"
t0=$(date +%s)
