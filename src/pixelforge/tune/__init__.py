"""Hyper-parameter and architecture search on Optuna: `pixelforge tune`, `pixelforge nas`, `pixelforge runs compare`.

Optuna owns the search (samplers, pruners) and the storage (SQLite or PostgreSQL through its RDBStorage); this
package only maps config keys to Optuna's distributions (space.py), runs each trial as a normal run folder through
`pixelforge.api.train` (study.py), reports the monitor per epoch from an engine hook (pruning.py) and writes the
study's report (report.py). It sits above the API layer: a trial is exactly what `pixelforge train` does.
"""
