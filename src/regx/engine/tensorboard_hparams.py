"""The HParams dashboard's records of one run, written by `logger=tensorboard`: a session
start (the run's hyperparameters) and a session end (its outcome). TensorBoard pairs them
with the run's scalars, its metrics, to list one row per run under `--logdir`.

Built from tensorboard's protos: its own summary helpers for these import TensorFlow.
"""

from __future__ import annotations

import json
import time
from typing import Any

from regx.keys import identity_config


def hparam_values(config: dict[str, Any]) -> dict[str, bool | float | str]:
    """The run's identity keys (experiment, evaluation, seed; regx.keys) as HParams values:
    numbers and booleans as they are, null as `null`, lists as JSON, the rest as text."""
    values: dict[str, bool | float | str] = {}
    for key, value in identity_config(config).items():
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is None:
            values[key] = "null"
        else:
            values[key] = json.dumps(value, default=str)
    return values


# regx's run outcome → the HParams plugin's session status (api.proto's Status has no
# "stopped"; an interrupted run can still be resumed, so its outcome is unknown yet)
SESSION_STATUS = {
    "finished": "STATUS_SUCCESS",
    "interrupted": "STATUS_UNKNOWN",
    "failed": "STATUS_FAILURE",
    "diverged": "STATUS_FAILURE",
}


def _hparams_summary(tag: str, data: Any) -> Any:
    """An event-file Summary holding HParams plugin data (tensorboard's own summary module
    for this needs TensorFlow; the protos do not)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    summary = Summary()
    value = summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data))
    value.tensor.CopyFrom(metadata.NULL_TENSOR)
    return summary


def session_start_summary(values: dict[str, bool | float | str]) -> Any:
    """The HParams session start: the run's hyperparameters and the start time."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for key, value in values.items():
        if isinstance(value, bool):
            start.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = value
    data = plugin_data_pb2.HParamsPluginData(session_start_info=start)
    return _hparams_summary(metadata.SESSION_START_INFO_TAG, data)


def session_end_summary(status: str) -> Any:
    """The HParams session end: regx's outcome as the plugin's status, and the end time."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    code = api_pb2.Status.Value(SESSION_STATUS.get(status, "STATUS_FAILURE"))
    end = plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, data)
