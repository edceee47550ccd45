"""What adversarial validation's discriminator costs, as a share of a whole run.

Runs `python -m regx train` (trainer=default on digits unless overridden) alternately with
`split=random` and `split=adversarial` (random, adversarial, random, …, so drifts in
machine load hit both alike) and prints, as medians over the repeats:

- the discriminator's own time from summary.json (`split.seconds` wall and
  `split.cpu_seconds`, the CPU time of the thread that fitted it, scikit-learn's import
  included) over the run's `wall_time_s`;
- the extra CPU time (user + sys of the whole process) of an adversarial run over a
  random one, as a share of the random run's CPU time.

    python scripts/split_cost.py                       # digits, trainer=default, 3 repeats
    python scripts/split_cost.py --repeats 5 dataset.test_shift=corrupt
    python scripts/split_cost.py split.discriminator=cnn
    python scripts/split_cost.py --direct split.discriminator=cnn dataset.test_shift=subpop

`--direct` times the split alone, in this process (no training runs): the first repeat
pays the imports (scikit-learn, and torch's optimizer machinery, which a run's trainer
would import anyway), the later ones are the discriminator's own cost.

Positional arguments are Hydra overrides for both arms (`split.*` ones reach only the
adversarial arm). Timings are wall-clock and CPU on whatever machine this is: on a shared
machine, repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Keep each run on one thread so the CPU times compare like for like.
BASE = ["trainer.progress=false", "trainer.threads=1"]


def run(overrides: list[str], out_dir: Path) -> tuple[dict, float]:
    """One `regx train` in a child process: (summary.json, child user+sys CPU seconds)."""
    run_dir = out_dir / f"run{len(list(out_dir.iterdir()))}"
    cmd = [sys.executable, "-m", "regx", "train", *BASE, *overrides, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary, usage.ru_utime + usage.ru_stime


def direct(overrides: list[str], repeats: int, threads: int) -> None:
    """The adversarial split alone on the configured dataset, `repeats` times."""
    import torch

    from regx.config import compose_config
    from regx.config.build import build_spec

    torch.set_num_threads(threads)
    spec = build_spec(compose_config(["split=adversarial", *overrides]))
    data = spec.dataset.load(seed=spec.seed)
    walls, cpus = [], []
    for i in range(repeats):
        info = spec.split(data.train_x, data.train_y, data.test_x, spec.seed).info
        walls.append(info["seconds"])
        cpus.append(info["cpu_seconds"])
        print(
            f"repeat {i + 1}: {info['seconds']:.2f}s wall / {info['cpu_seconds']:.2f}s CPU "
            f"(AUC {info['auc']:.4f}){' (imports included)' if i == 0 else ''}",
            flush=True,
        )
    warm = slice(1, None) if repeats > 1 else slice(None)
    print(
        f"\noverrides: {' '.join(overrides) or '(none)'}; {threads} thread(s); median of "
        f"{'repeats 2–' + str(repeats) if repeats > 1 else 'one repeat'}: "
        f"{statistics.median(walls[warm]):.2f}s wall / {statistics.median(cpus[warm]):.2f}s CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both arms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct", action="store_true", help="time the split alone, in-process")
    parser.add_argument("--threads", type=int, default=1, help="--direct: torch threads")
    args = parser.parse_args()
    if args.direct:
        direct(args.overrides, args.repeats, args.threads)
        return
    common = [o for o in args.overrides if not o.startswith("split.")]
    adversarial = ["split=adversarial", *args.overrides]
    cpu: dict[str, list[float]] = {"random": [], "adversarial": []}
    split_wall, split_cpu, run_wall = [], [], []
    with tempfile.TemporaryDirectory(prefix="regx-split-cost-") as tmp:
        out = Path(tmp)
        for i in range(args.repeats):
            _, random_cpu = run(["split=random", *common], out)
            summary, adv_cpu = run(adversarial, out)
            cpu["random"].append(random_cpu)
            cpu["adversarial"].append(adv_cpu)
            split = summary["split"]
            split_wall.append(split["seconds"])
            split_cpu.append(split["cpu_seconds"])
            run_wall.append(summary["wall_time_s"])
            print(
                f"repeat {i + 1}: random {random_cpu:.1f}s CPU; adversarial {adv_cpu:.1f}s CPU, "
                f"discriminator {split['seconds']:.2f}s wall / {split['cpu_seconds']:.2f}s CPU "
                f"of a {summary['wall_time_s']:.1f}s run (AUC {split['auc']:.3f})",
                flush=True,
            )
    med = statistics.median
    extra = med(cpu["adversarial"]) - med(cpu["random"])
    print(f"\noverrides: {' '.join(args.overrides) or '(none)'}; {args.repeats} repeats, medians")
    print(f"discriminator wall / run wall:        {100 * med(split_wall) / med(run_wall):.1f}%")
    print(f"discriminator CPU / run wall:         {100 * med(split_cpu) / med(run_wall):.1f}%")
    print(
        f"process CPU, adversarial vs random:   {med(cpu['adversarial']):.1f}s vs "
        f"{med(cpu['random']):.1f}s ({100 * extra / med(cpu['random']):+.1f}%)"
    )


if __name__ == "__main__":
    main()
