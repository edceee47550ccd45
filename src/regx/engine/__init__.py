"""The training engine: turns a validated `RunSpec` into a trained model and a run directory."""
