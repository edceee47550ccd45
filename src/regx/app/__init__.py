"""The application layer: the only code that knows both Hydra and the engine.

`hydra_task` runs `regx train` (one run or a sweep's jobs), `evaluate` re-scores a run,
`sweeps`/`callbacks` serve multiruns, `torchrun` composes the config under torchrun.
"""
