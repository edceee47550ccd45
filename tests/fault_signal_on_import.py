"""Importing this module sends SIGTERM to the importing process (see fault_callbacks)."""

import os
import signal
import time

os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)  # the handler runs here, inside the import
