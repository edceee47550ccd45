"""A disk that fills up while a run writes: one line naming the file and the fix, a non-zero
exit, `status: failed`, and the files already written intact."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

from fault_helpers import FAST, error_line, hydra_in_process
from regx.engine import checkpoint

TINY = [*FAST, "dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.epochs=2"]


class FillsUp:
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


@pytest.fixture
def full_at_last_checkpoint(monkeypatch):
    """torch.save of `last.pt` after the first epoch's hits a full disk (torch itself turns
    the OSError into a RuntimeError, as it does on a real full disk)."""
    real_save = torch.save
    saves = []

    def save(state, f):
        saves.append(state)
        room = 10**9 if len(saves) < 3 else 100  # epoch 1's last.pt and best.pt fit
        return real_save(state, FillsUp(f, room))

    monkeypatch.setattr(checkpoint.torch, "save", save)


def test_torch_save_on_a_full_disk_raises_the_oserror_naming_the_file(tmp_path):
    target = tmp_path / "last.pt"
    checkpoint.save_checkpoint(target, {"w": torch.zeros(4)})
    before = target.read_bytes()
    real_save = torch.save
    with pytest.MonkeyPatch.context() as m:
        m.setattr(checkpoint.torch, "save", lambda s, f: real_save(s, FillsUp(f, 100)))
        with pytest.raises(OSError) as caught:
            checkpoint.save_checkpoint(target, {"w": torch.zeros(10000)})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_run_whose_disk_fills_up_fails_in_one_line_and_keeps_its_files(
    full_at_last_checkpoint, tmp_path: Path
):
    run_dir = tmp_path / "run"
    code, _, err = hydra_in_process([*TINY, f"hydra.run.dir={run_dir}"])
    line = error_line(err)
    assert code != 0 and "Traceback" not in err
    assert line.startswith(
        f"error: No space left on device (OSError): {run_dir / 'checkpoints' / 'last.pt'}; "
        "fix the cause (disk space"
    ), line
    assert line.endswith(f"then continue with: regx train --resume {run_dir}"), line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["message"]
    # epoch 1's checkpoint is whole: the run can continue from it once there is room
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["train_state"]["epoch"] == 1
