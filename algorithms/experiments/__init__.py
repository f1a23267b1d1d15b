"""Experiments that train real models on offline data and write tables and figures.

Each ``run_*`` function takes an output directory, returns a pandas DataFrame and
writes ``<name>.csv``, ``<name>.md`` and a PNG there.
"""

from .attmemo_eval import run_attmemo_experiment
from .memoryformer_lm import run_memoryformer_experiment
from .nm_training import run_nm_experiment

__all__ = ["run_attmemo_experiment", "run_memoryformer_experiment", "run_nm_experiment"]
