"""What the scripts share on top of the library: their command lines, the error contract, the opening
every script has (processes, run folder, data), training epochs with their progress bars, tables.

Modules: ``arguments`` (the parser, argument groups and types, flags settled from checkpoints),
``opening`` (``run``, ``open_run``, the model and its checkpoint, ``train_epoch``), ``output``
(progress bars, tables). Scripts only: the library never imports this.
"""
import runtime  # noqa: F401  first: its stop signals are installed before torch is imported (runtime.signals)
from cli.arguments import (FROM_CHECKPOINT, TRAIN_EVAL, ArgumentParser, add_data_arguments, add_ece_argument,
                           add_model_argument, add_run_arguments, add_train_eval_argument, checkpoint_split, fraction, int_at_least,
                           non_negative_float, positive_int, resolve_from_checkpoint, resolve_split,
                           settings_from_checkpoint, train_eval_loader)
from cli.opening import (Opened, build_model, check_network, finished, load_data, maybe_compile, model_kwargs,
                         model_payload, open_run, restore_training, run, sync_batchnorm, train_epoch)
from cli.output import Table, is_main, progress

__all__ = ["FROM_CHECKPOINT", "TRAIN_EVAL", "ArgumentParser", "add_data_arguments", "add_ece_argument", "add_model_argument",
           "add_run_arguments", "add_train_eval_argument", "checkpoint_split", "fraction", "int_at_least",
           "non_negative_float", "positive_int", "resolve_from_checkpoint", "resolve_split",
           "settings_from_checkpoint", "train_eval_loader", "Opened", "build_model", "check_network", "finished",
           "load_data", "maybe_compile", "model_kwargs", "model_payload", "open_run", "restore_training", "run",
           "sync_batchnorm", "train_epoch", "Table", "is_main", "progress"]
