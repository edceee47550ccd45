"""Write docs/studies.md from the run directories that scripts/studies.sh produced.

Every number on the page is read from the runs' summary.json / metrics.csv, and every
sentence that compares two methods, and each study's verdict, is derived from those numbers
by the rule of scripts/studies/rules.py, so the page cannot drift from its tables. For each
study and scale it also runs `regx report` (report.md, runs.csv, compare.png) and draws the
study's figure into docs/studies/<scale>-<study>/. The studies themselves (arms, conditions,
metrics, sentences, verdicts) are scripts/studies/{mixing,noise,open_set,shift}.py.

    python scripts/studies_page.py --runs outputs/studies --page docs/studies.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts/studies package

from studies.page import page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("outputs/studies"))
    parser.add_argument("--page", type=Path, default=Path("docs/studies.md"))
    parser.add_argument(
        "--started",
        type=float,
        default=None,
        help="when the runs began (Unix time): the page states the minutes from then to its end",
    )
    args = parser.parse_args()
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(page(args.runs, args.page.parent, args.started))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
