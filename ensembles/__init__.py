"""Ensembles and averages of networks: FGE's and SSE's cycles and snapshots, running ensembles of
predictions, Stochastic Weight Averaging (its schedule and the averaged weights), SWA-Gaussian
(the Gaussian over SWA's trajectory and its Bayesian model average), and calibration pictures.

Modules: ``schedules`` (FGE, SSE), ``predictions`` (``ProbabilityEnsemble``, ``LogitEnsemble``, the picture),
``averaging`` (SWA), ``swag`` (``SWAG``, ``bayesian_model_average``), ``calibration``
(reliability diagrams). Nothing here parses arguments or prints.
"""
from ensembles.averaging import averaged_model, joins_average, load_average, plain_copy, swa_learning_rate
from ensembles.calibration import plot_reliability, reliability
from ensembles.predictions import ENSEMBLES, LogitEnsemble, ProbabilityEnsemble, plot_ensemble_accuracy
from ensembles.schedules import (SCHEDULES, cycle_position, fge_learning_rate, is_snapshot_epoch, snapshot_epochs,
                                 sse_learning_rate)
from ensembles.swag import SWAG, Evaluated, Sample, bayesian_model_average, evaluate_vector, sample_generator

__all__ = ["averaged_model", "joins_average", "load_average", "plain_copy", "swa_learning_rate",
           "plot_reliability", "reliability", "ENSEMBLES", "LogitEnsemble", "ProbabilityEnsemble",
           "plot_ensemble_accuracy", "SCHEDULES", "cycle_position", "fge_learning_rate", "is_snapshot_epoch",
           "snapshot_epochs", "sse_learning_rate", "SWAG", "Evaluated", "Sample", "bayesian_model_average",
           "evaluate_vector", "sample_generator"]
