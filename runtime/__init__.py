"""How a run runs: its folder, records and checkpoint files, its processes and precision, its errors.

The lowest layer: it imports torch and nothing else of ours, so the library and the scripts both
stand on it. Modules: ``signals`` (SIGTERM and SIGUSR1 remembered from a script's start),
``errors``, ``files`` (atomic writes), ``checkpoints``, ``folder`` (``Run``: continuing and resuming,
point by point runs), ``records`` (the files every run writes), ``processes`` (torchrun, devices, ``--amp``).
"""
# first, before torch is imported (seconds): a stop signal from now on is remembered, not fatal
from runtime import signals as _signals  # the standard library only

if _signals.runs_a_script():
    _signals.STOP.install()

from runtime.checkpoints import (LAST, latest_checkpoint, load_checkpoint, model_checkpoint, progress_of,
                                 resolve_checkpoint_path, rng_state, save_checkpoint, set_rng_state)
from runtime.errors import DivergedError, UserError, WriteError
from runtime.files import atomic_open, write_atomic
from runtime.folder import OPERATIONAL, Run, continues_in_place, differing_flags, given_flags
from runtime.records import RunRecord, remove_run_files
from runtime.signals import EXIT_REQUEUE, STOP, StopSignals
from runtime.processes import (Processes, amp_dtype, autocast_type, grad_scaler, keep_freed_cpu_memory,
                               start_processes)

__all__ = ["LAST", "latest_checkpoint", "load_checkpoint", "model_checkpoint", "progress_of",
           "resolve_checkpoint_path", "rng_state", "save_checkpoint", "set_rng_state", "DivergedError",
           "UserError", "WriteError", "atomic_open", "write_atomic", "EXIT_REQUEUE", "OPERATIONAL", "RunRecord",
           "Run", "STOP", "StopSignals", "continues_in_place", "differing_flags", "given_flags", "remove_run_files",
           "Processes", "amp_dtype", "autocast_type", "grad_scaler", "keep_freed_cpu_memory", "start_processes"]
