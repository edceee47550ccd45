"""(b) regx's in-memory batch path against DataLoader(TensorDataset) with 0 and 2 workers.

The same CIFAR-sized uint8 images, batch, crop + flip + normalize on each side; every
batch is touched on the device so no lazy work is skipped. Ratio = DataLoader time / regx
time; the CPU time of 2 workers is spent in other processes, so only workers=0 compares
in CPU time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from benchlib.timing import fmt, interleaved, verdict
from regx.data.augment import crop_flip


def bench_data(n: int, batch_size: int, repeats: int, device: torch.device) -> dict:
    from regx.data.augment import Normalize, pad
    from regx.data.batches import DeviceBatches
    from regx.data.types import Augment

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    augment = Augment(crop_padding=4, flip=True)
    normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), device)
    regx_batches = DeviceBatches(x, y, batch_size, device, augment, seed=0)
    sink = torch.zeros((), device=device)

    def consume(xb: torch.Tensor, yb: torch.Tensor) -> None:
        # touch every batch so lazy work cannot be skipped; no host sync
        sink.add_(xb[:, 0, 0, 0].sum() + yb.sum())

    def regx_epoch(epoch: int = 0) -> None:
        for xb, yb, _ in regx_batches.epoch(epoch):
            consume(normalize(xb), yb)

    def loader_epoch(workers: int) -> Callable[[], None]:
        pin = device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=pin,
        )

        def run() -> None:
            for xb, yb in loader:
                xb = xb.to(device, non_blocking=pin)
                yb = yb.to(device, non_blocking=pin)
                xb = crop_flip(pad(xb, 4), (32, 32), flip=True)
                consume(normalize(xb), yb)

        return run

    contenders = {"regx": regx_epoch, "workers=0": loader_epoch(0), "workers=2": loader_epoch(2)}
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu_times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(repeats):
        for k, (wall, cpu) in interleaved(contenders, 1, device, start=r).items():
            times[k].append(wall)
            cpu_times[k].append(cpu)
    out = {"times": times, "cpu": cpu_times}
    for k in ("workers=0", "workers=2"):
        ratios = [b / a for a, b in zip(times["regx"], times[k])]
        out[k] = {"ratios": ratios, "ratio": statistics.median(ratios)}
    # the CPU time of 2 workers is spent in other processes: only workers=0 compares
    ratios = [b / a for a, b in zip(cpu_times["regx"], cpu_times["workers=0"])]
    out["workers=0 cpu"] = {"ratios": ratios, "ratio": statistics.median(ratios)}
    return out


def print_data(quick: bool, repeats: int, device: torch.device) -> dict[str, bool]:
    """Run and print part (b); whether its targets are met, by wall and by CPU time."""
    n = 10_000 if quick else 50_000
    print(
        f"\n(b) data path, {n} CIFAR-sized uint8 images, batch 512, crop+flip+normalize "
        "(ratio = DataLoader time / regx time; ≥ 2)"
    )
    res = bench_data(n, 512, repeats, device)
    ok = {"wall": True, "cpu": True}
    print(
        f"  regx in-memory      wall {fmt(res['times']['regx'], ' s')}"
        f"  cpu {fmt(res['cpu']['regx'], ' s')}"
    )
    for k in ("workers=0", "workers=2"):
        good = res[k]["ratio"] >= 2
        ok["wall"] &= good
        print(
            f"  DataLoader {k}: wall {fmt(res['times'][k], ' s')}\n"
            f"    wall ratio {res[k]['ratio']:.1f}× {fmt(res[k]['ratios'], digits=1)}  {verdict(good)}"
        )
    m = res["workers=0 cpu"]
    ok["cpu"] = m["ratio"] >= 2
    print(
        f"  DataLoader workers=0 cpu {fmt(res['cpu']['workers=0'], ' s')}\n"
        f"    cpu ratio {m['ratio']:.1f}× {fmt(m['ratios'], digits=1)}  {verdict(ok['cpu'])}"
        "  (workers=2 spends its CPU in other processes: wall only)"
    )
    return ok
