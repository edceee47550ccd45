#!/usr/bin/env bash
# Re-run the four studies of docs/studies.md from scratch and regenerate the page, its
# tables and its plots. Sized for a 2-core CPU (under an hour): the three seeds of an arm run
# as three joblib jobs of one thread each.
#
#   bash scripts/studies.sh                 # digits and the CIFAR-10 subset
#   STUDY_SCALES=digits bash scripts/studies.sh
#
# Environment: REGX_CIFAR10 (the CIFAR-10 ImageFolder, default ../shared/data/cifar10-jpg),
# STUDY_OUT (run directories, default outputs/studies), STUDY_JOBS (parallel jobs, 3),
# STUDY_SEEDS (default 0,1,2), STUDY_EXTRA (overrides added to every run, e.g.
# "trainer.epochs=1" to check the pipeline in a minute).
# The CIFAR-10 images are decoded once into the regx cache (~/.cache/regx) before the runs.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${STUDY_OUT:-outputs/studies}
JOBS=${STUDY_JOBS:-3}
SCALES=${STUDY_SCALES:-digits cifar}
SEEDS=${STUDY_SEEDS:-0,1,2}
read -r -a EXTRA <<< "${STUDY_EXTRA:-}"
export REGX_CIFAR10=${REGX_CIFAR10:-../shared/data/cifar10-jpg}

started=$(date +%s)
rm -rf "$OUT"

# sweep SCALE ARM_DIR OVERRIDES...: one arm of a study, its seeds as parallel jobs
sweep() {
  local scale=$1 dir=$2
  shift 2
  echo "== $scale / $dir: $*"
  local log
  log="$OUT/$scale/$(echo "$dir" | tr / _).log"
  regx train -m hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" \
    "hydra.sweep.dir=$OUT/$scale/$dir" "experiment=study_$scale" "seed=$SEEDS" "$@" ${EXTRA[@]+"${EXTRA[@]}"} \
    > "$log" 2>&1 || {
    echo "sweep $scale/$dir failed; see $log"
    exit 1
  }
  # a sweep goes on past a failed job; a study must not (its table would miss seeds)
  local not_finished="  (failed|diverged|interrupted|unfinished|running): "
  if grep -Eq "$not_finished" "$log"; then
    grep -E "$not_finished" "$log" | head -3
    echo "a run of $scale/$dir did not finish; see $log"
    exit 1
  fi
}

for scale in $SCALES; do
  mkdir -p "$OUT/$scale"
  if [ "$scale" = cifar ]; then
    corrupt=(shift.kind=brightness shift.severity=3)
    adv=(split.pca=32)  # the discriminator on 32 principal components of 3,072 pixels
  else
    corrupt=(shift.kind=blur shift.severity=2)
    adv=()
  fi
  # the baseline (no mixing, cross-entropy, random split) serves studies 1-3
  sweep "$scale" base
  # 1. mixing augmentations
  sweep "$scale" aug/samplepairing +aug=samplepairing
  sweep "$scale" aug/mixup_uniform +aug=mixup aug.lam=uniform
  sweep "$scale" aug/mixup_beta0.2 +aug=mixup aug.lam=beta aug.alpha=0.2
  # 2. gamma-CE against cross-entropy and label smoothing
  sweep "$scale" loss/gamma_ce_0.1 loss=gamma_ce loss.gamma=0.1
  sweep "$scale" loss/gamma_ce_0.5 loss=gamma_ce loss.gamma=0.5
  sweep "$scale" loss/gamma_ce_0to0.8 loss=gamma_ce loss.schedule=linear loss.gamma_start=0 \
    loss.gamma_end=0.8
  sweep "$scale" loss/label_smoothing loss=label_smoothing
  # 3. AM-Softmax features for retrieval
  sweep "$scale" am/am_softmax_0.35 loss=am_softmax loss.m=0.35
  sweep "$scale" am/am_softmax_auto loss=am_softmax loss.margin=auto
  # 4. validation splits under two test shifts (test accuracy per epoch logged for analysis)
  for shift in corrupt prior; do
    args=(dataset.test_shift=$shift track_test=true)
    if [ "$shift" = corrupt ]; then args+=("${corrupt[@]}"); else args+=(shift.strength=0.8); fi
    sweep "$scale" "split_$shift/random" split=random "${args[@]}"
    for mode in resample topk weight; do
      sweep "$scale" "split_$shift/adv_$mode" split=adversarial split.mode=$mode "${args[@]}" \
        ${adv[@]+"${adv[@]}"}
    done
  done
done

python scripts/studies_page.py --runs "$OUT" --page docs/studies.md --minutes \
  "$(( ($(date +%s) - started + 59) / 60 ))"
