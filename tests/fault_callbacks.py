"""A Hydra callback that signals its own process in the window after Hydra has made a
single run's dir and written .hydra/ and train.log, before regx's job body runs:

    +hydra.callbacks.signal._target_=fault_callbacks.SignalBeforeJob [+hydra.callbacks.signal.inside_import=true]

`inside_import=true` sends it while a module is being imported (as when the job body
imports torch), where the handler cannot raise and leaves at once.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from typing import Any

from hydra.experimental.callback import Callback


class SignalBeforeJob(Callback):
    def __init__(self, inside_import: bool = False) -> None:
        self.inside_import = inside_import

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if self.inside_import:
            sys.modules.pop("fault_signal_on_import", None)
            importlib.import_module("fault_signal_on_import")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in the main thread at once
