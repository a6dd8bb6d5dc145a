"""A run: its settings, its directory, and a finished run read once.

    config   TrainConfig, the one table of settings; flags, flags.json and
             flagfiles derive from it
    run_dir  a run's files (flags.json, split.npz, model.keras,
             metrics.json); load_run reads a finished run once for every
             reader (evaluation, export, search, service): a Run with its
             model, config, fingerprint and data checked against its split
"""
