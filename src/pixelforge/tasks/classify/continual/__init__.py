"""Continual learning for classification: `train --continue-from RUN --continual naive|replay|ewc|lwf`.

One module a job: config.py (the keys), replay.py (the memory), penalties.py (EWC, LwF), step.py (the training
step), lineage.py (reading the parent run, growing the head, lineage.json), carry.py (what one step hands the next),
setup.py (the engine's TaskSetup), sequence.py (the accuracy matrix of a run's lineage).
"""
