"""Hydra composition, structured-config validation, and the Hydra task that runs the engine."""

import os

from regx.config.hydra_compat import register_resolver

# Used in hydra.run.dir / hydra.sweep.dir so that two runs started in the same microsecond
# from two shells still get two directories. Cached, so every job of a sweep (also in
# joblib workers, which receive the resolver cache with the config) sees the launcher's pid.
register_resolver("regx_pid", lambda: os.getpid())
