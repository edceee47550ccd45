"""Console logging: a run's info lines on stdout; its warnings on stderr, as `warning: …`.

So `regx train > out.txt` still shows a warning on the terminal, and a warning reads the
same in every command (conf/hydra/job_logging/regx.yaml and `regx.cli.log_to_stderr` use
these two pieces)."""

from __future__ import annotations

import logging


class BelowWarning(logging.Filter):
    """Passes the records below WARNING (the stdout handler's share)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


class LevelPrefix(logging.Formatter):
    """The message, with `warning: ` (or `error: `, …) in front from WARNING up."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"
