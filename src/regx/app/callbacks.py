"""Hydra callbacks of `regx train` (registered under `hydra.callbacks` in conf/config.yaml).

`SweepReport.on_multirun_end` runs in the launching process once every job of a sweep has
returned (with the joblib launcher the jobs run in worker processes, the callback still
runs here), and prints the sweep's comparison table — one row per group of runs that
differ only by seed, mean ± std — and writes report.md, runs.csv and compare.png into the
sweep directory (and report.html), exactly as `regx report SWEEP_DIR --html` would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from regx.app.hydra_task import debug_mode
        from regx.errors import UserError
        from regx.report.sweep import sweep_report

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir() or not any(sweep_dir.glob("**/.hydra/config.yaml")):
            return  # no job started (the sweep failed before its first): nothing to report
        try:
            sweep_report([sweep_dir], out=sweep_dir, html=True)
        except UserError as e:
            print(f"sweep report: {e}", file=sys.stderr)
        except Exception as e:
            # The runs are on disk whatever happens here; `regx report` can redo this.
            if debug_mode():
                raise
            print(
                f"sweep report failed ({type(e).__name__}: {e}); "
                f"run `regx report {sweep_dir}` to retry",
                file=sys.stderr,
            )
