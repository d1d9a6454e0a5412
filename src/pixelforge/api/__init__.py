"""The Python API: `train`, `evaluate`, `predict`, `export`, `generate`, `zeroshot`, `score_files`. Each asks the task registry which task a run or
a call is for and hands the work to that task; nothing here knows a task by name."""
