"""How a run runs: its folder, records and checkpoint files, its processes and precision, its errors.

The lowest layer: it imports torch and nothing else of ours, so the library and the scripts both
stand on it. Modules: ``errors``, ``files`` (atomic writes), ``checkpoints``, ``folder`` (``Run``,
records, continuing and resuming, stop signals), ``processes`` (torchrun, devices, ``--amp``).
"""
from runtime.checkpoints import (LAST, latest_checkpoint, load_checkpoint, model_checkpoint, progress_of,
                                 resolve_checkpoint_path, rng_state, save_checkpoint, set_rng_state)
from runtime.errors import DivergedError, UserError, WriteError
from runtime.files import atomic_open, write_atomic
from runtime.folder import (EXIT_REQUEUE, OPERATIONAL, RunRecord, Run, StopSignals, continues_in_place,
                            differing_flags, given_flags, remove_run_files)
from runtime.processes import (Processes, amp_dtype, autocast_type, grad_scaler, keep_freed_cpu_memory,
                               start_processes)

__all__ = ["LAST", "latest_checkpoint", "load_checkpoint", "model_checkpoint", "progress_of",
           "resolve_checkpoint_path", "rng_state", "save_checkpoint", "set_rng_state", "DivergedError",
           "UserError", "WriteError", "atomic_open", "write_atomic", "EXIT_REQUEUE", "OPERATIONAL", "RunRecord",
           "Run", "StopSignals", "continues_in_place", "differing_flags", "given_flags", "remove_run_files",
           "Processes", "amp_dtype", "autocast_type", "grad_scaler", "keep_freed_cpu_memory", "start_processes"]
