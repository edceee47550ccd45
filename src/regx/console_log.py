"""Console logging: a run's info lines on stdout; its warnings on stderr, as `warning: …`.

So `regx train > out.txt` still shows a warning on the terminal
(conf/hydra/job_logging/regx.yaml uses both pieces). The commands whose stdout is their
result (`regx evaluate`, `regx report`) send every log line to stderr, with the same
`warning: ` prefix (`regx.cli.log_to_stderr`)."""

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
