#!/usr/bin/env bash
# Copies the finished runs of a sweep dir into results/ as run records: every
# file but checkpoints, TensorBoard events and labels.npz (all rebuilt by
# rerunning a run's command.sh), then writes the report there. Safe to rerun
# as more runs finish. --without_predictions leaves out the per-example
# predictions (*.npz) too, for results whose tables do not read them.
#   bash scripts/export_runs.sh runs/NAME results/NAME [--without_predictions]
set -euo pipefail
usage="usage: export_runs.sh SWEEP_DIR RESULTS_DIR [--without_predictions]"
src="${1:?$usage}"
dst="${2:?$usage}"
records=(command.sh config.json log.txt metrics.jsonl run.json summary.json
  timing.jsonl)
case "${3:-}" in
  "") records+=(train_predictions.npz train_predictions_best_val.npz
    heldout_predictions.npz heldout_predictions_best_val.npz) ;;
  --without_predictions) ;;
  *) echo "export_runs.sh: unknown option '$3'; $usage" >&2; exit 2 ;;
esac
(cd "$src" && find . -name summary.json -printf '%h\n' | sort) | while read -r run; do
  mkdir -p "$dst/$run"
  for record in "${records[@]}"; do
    if [[ -f "$src/$run/$record" ]]; then cp "$src/$run/$record" "$dst/$run/"; fi
  done
done
cp "$src/sweep.json" "$dst/"
python3 -m tce_jax.analysis.report --sweep_dir="$dst" >/dev/null
echo "export_runs: $(find "$dst" -name summary.json | wc -l) finished runs in $dst"
