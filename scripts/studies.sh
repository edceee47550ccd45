#!/usr/bin/env bash
# Re-run the studies of docs/studies.md from scratch and regenerate the page, its tables and
# its figures. One study per claim (conf/experiment/study_{mixing,noise,open_set,shift}.yaml,
# each holding all its arms), at two scales (conf/scale/{digits,cifar}.yaml), 3 seeds; the
# runs of a sweep go two at a time (joblib), one thread each. Sized for a 2-core CPU: the
# plan below is printed with its estimated wall time before anything runs.
#
#   REGX_CIFAR10=/path/to/cifar10-jpg bash scripts/studies.sh    # everything (about 55 min)
#   bash scripts/studies.sh --only 3         # study 3 only; the page is rebuilt from all runs
#   bash scripts/studies.sh --plan           # print the plan and its estimated time, run nothing
#   STUDY_SCALES=digits bash scripts/studies.sh                  # no CIFAR-10
#   STUDY_SCALES=digits STUDY_SEEDS=0,1 STUDY_EXTRA="trainer.epochs=1" bash scripts/studies.sh
#                                            # a pipeline check in a few minutes
#
# Environment:
#   REGX_CIFAR10  CIFAR-10 as an ImageFolder (train/<class>/*.jpg, test/<class>/*.jpg). Set it
#                 to where the images are; the default, data/cifar10-jpg inside the
#                 repository, holds no images unless you put them there. The images are
#                 decoded once into the regx cache ($REGX_CACHE, default ~/.cache/regx).
#   STUDY_OUT     run directories (default outputs/studies): STUDY_OUT/<scale>/<study>/<part>
#   STUDY_JOBS    parallel runs (default 2)          STUDY_SEEDS   seeds (default 0,1,2)
#   STUDY_SCALES  "digits cifar" (default)           STUDY_EXTRA   overrides for every run
#   STUDY_PAGE    the page (default docs/studies.md; its figures and tables go next to it)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${STUDY_OUT:-outputs/studies}
JOBS=${STUDY_JOBS:-2}
SCALES=${STUDY_SCALES:-digits cifar}
SEEDS=${STUDY_SEEDS:-0,1,2}
PAGE=${STUDY_PAGE:-docs/studies.md}
read -r -a EXTRA <<< "${STUDY_EXTRA:-}"
export REGX_CIFAR10=${REGX_CIFAR10:-$PWD/data/cifar10-jpg}
# one thread per run, BLAS (the discriminator's logistic regression) included
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

STUDY_KEYS=(mixing noise open_set shift)
ONLY=""
PLAN_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --plan) PLAN_ONLY=1; shift ;;
    --only)
      [[ ${2:-} =~ ^[1-4]$ ]] || { echo "--only takes a study number, 1-4" >&2; exit 2; }
      ONLY=${STUDY_KEYS[$2 - 1]}
      shift 2
      ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

# The plan: scale, study, part (its sweep folder), CPU-seconds per run inside a joblib worker
# (1 thread, measured on this machine in short sweeps of each study and scale, less the
# sweep's own 20 s), cells
# (arms × conditions) per seed, and the overrides that cut the preset's grid, if any.
# Cut to fit the budget, and said so on the page ("not run at this scale"):
#   digits shift: the top-k arms and the weighted pixel-logreg arm (random, resample with
#                 either discriminator and weighted with random features stay);
#   cifar noise:  the conditions other than 40 % symmetric noise, and the γ schedule
#                 (10 epochs: the memorization regime is out of reach anyway, see
#                 conf/scale/cifar.yaml's study node);
#   cifar shift:  the class-prior shift and the tilt-1 subpops; inside the support
#                 random / resample (pixel logreg, random features); the corruption control
#                 with random and resample (pixel logreg) only.
PLAN=(
  "digits mixing all 8.5 7"
  "digits noise all 12 32"
  "digits open_set all 4.5 5"
  "digits shift all 9 24 arm=shift/random,shift/resample_logreg,shift/resample_features,shift/weight_features"
  "cifar mixing all 36 7"
  "cifar noise sym40 88 7 condition=noise/sym40 arm=noise/ce,noise/gamma_ce_03,noise/gamma_ce_05,noise/gamma_ce_07,noise/label_smoothing,noise/focal,noise/mixup"
  "cifar open_set all 20 5"
  "cifar shift within 49 6 condition=shift/brightness_t2,shift/subgroup_t2 arm=shift/random,shift/resample_logreg,shift/resample_features"
  "cifar shift control 60 2 condition=shift/corrupt arm=shift/random,shift/resample_logreg"
)
SWEEP_OVERHEAD_S=20  # CPU-seconds per sweep: imports in the launcher and its workers, its report

selected() {  # the plan lines for the chosen scales and study
  local line scale study
  for line in "${PLAN[@]}"; do
    read -r scale study _ <<< "$line"
    [[ " $SCALES " == *" $scale "* ]] || continue
    [ -z "$ONLY" ] || [ "$study" = "$ONLY" ] || continue
    echo "$line"
  done
}

n_seeds=$(awk -F, '{print NF}' <<< "$SEEDS")
selected | awk -v seeds="$n_seeds" -v jobs="$JOBS" -v over="$SWEEP_OVERHEAD_S" '
  { runs += $5 * seeds; cpu += $4 * $5 * seeds + over; sweeps++ }
  END {
    printf "plan: %d sweeps, %d runs, about %.0f CPU-minutes: about %.0f minutes with %d jobs ", \
      sweeps, runs, cpu / 60, cpu / 60 / jobs + 2, jobs
    print "(+2 for the page; the full budget, without STUDY_EXTRA)"
  }'

if [ "$PLAN_ONLY" = 1 ]; then
  selected | awk -v seeds="$n_seeds" '{
    cuts = ""; for (i = 6; i <= NF; i++) cuts = cuts " " $i
    printf "  %-7s %-9s %-8s %3d runs x %5.1f CPU-s%s\n", $1, $2, $3, $5 * seeds, $4, cuts
  }'
  exit 0
fi
if [[ " $SCALES " == *" cifar "* ]] && [ ! -d "$REGX_CIFAR10/train" ]; then
  echo "no CIFAR-10 images at $REGX_CIFAR10 (REGX_CIFAR10): set it, or STUDY_SCALES=digits" >&2
  exit 2
fi

started=$(date +%s)
# sweep SCALE STUDY PART OVERRIDES...: one sweep of a study, its runs as parallel jobs
sweep() {
  local scale=$1 study=$2 part=$3
  shift 3
  local dir="$OUT/$scale/$study/$part" log="$OUT/$scale/$study/$part.log"
  mkdir -p "$OUT/$scale/$study"
  echo "== $scale / $study / $part: $*  ($(date +%H:%M:%S))"
  regx train -m hydra/launcher=joblib "hydra.launcher.n_jobs=$JOBS" "hydra.sweep.dir=$dir" \
    "experiment=study_$study" "scale=$scale" "seed=$SEEDS" "$@" ${EXTRA[@]+"${EXTRA[@]}"} \
    > "$log" 2>&1 || {
    echo "sweep $scale/$study/$part failed; see $log"
    exit 1
  }
  # a sweep goes on past a failed job; a study must not (its table would miss seeds)
  local not_finished="  (failed|diverged|interrupted|unfinished|running): "
  if grep -Eq "$not_finished" "$log"; then
    grep -E "$not_finished" "$log" | head -3
    echo "a run of $scale/$study/$part did not finish; see $log"
    exit 1
  fi
}

# the studies being re-run start from nothing; the others' runs stay for the page
while read -r scale study _; do rm -rf "${OUT:?}/$scale/$study"; done < <(selected)
while read -r scale study part _ _ cuts; do
  read -r -a cut <<< "$cuts"
  sweep "$scale" "$study" "$part" ${cut[@]+"${cut[@]}"}
done < <(selected)

echo "runs took $(( ($(date +%s) - started + 59) / 60 )) minutes"
# the page states the wall time (runs and page) only when it is the whole script's
args=()
if [ -z "$ONLY" ] && [ "$SCALES" = "digits cifar" ] && [ ${#EXTRA[@]} -eq 0 ]; then
  args=(--started "$started")
fi
python scripts/studies_page.py --runs "$OUT" --page "$PAGE" ${args[@]+"${args[@]}"}
