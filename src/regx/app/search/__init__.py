"""regx's Optuna search, used by the Hydra sweeper plugin `hydra/sweeper=regx_optuna`
(src/hydra_plugins/regx_sweepers): the search space, the stored study, the results.

Outside the plugin package on purpose: Hydra's plugin scan imports every module there
without registering it in sys.modules (Hydra 1.3), which breaks dataclasses."""
