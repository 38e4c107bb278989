"""Ensembles and averages of networks: FGE's and SSE's cycles and snapshots, running ensembles of
predictions, and Stochastic Weight Averaging (its schedule and the averaged weights).

Modules: ``schedules`` (FGE, SSE), ``predictions`` (``ProbabilityEnsemble``, ``LogitEnsemble``, the picture),
``averaging`` (SWA). Nothing here parses arguments or prints.
"""
from ensembles.averaging import averaged_model, joins_average, load_average, plain_copy, swa_learning_rate
from ensembles.predictions import ENSEMBLES, LogitEnsemble, ProbabilityEnsemble, plot_ensemble_accuracy
from ensembles.schedules import (SCHEDULES, cycle_position, fge_learning_rate, is_snapshot_epoch, snapshot_epochs,
                                 sse_learning_rate)

__all__ = ["averaged_model", "joins_average", "load_average", "plain_copy", "swa_learning_rate",
           "ENSEMBLES", "LogitEnsemble", "ProbabilityEnsemble", "plot_ensemble_accuracy", "SCHEDULES", "cycle_position", "fge_learning_rate",
           "is_snapshot_epoch", "snapshot_epochs", "sse_learning_rate"]
