"""Files written so that a run killed at any moment leaves the old file or the new one, never half.

``atomic_open`` writes beside the target and renames; the file gets the permissions a plain
``open`` gives under the user's umask. A failed write is a ``WriteError`` naming the file,
whatever raised it, recognised by the OSError behind it (``os_error_behind``).
"""
from __future__ import annotations

import contextlib
import os
import tempfile

from runtime.errors import WriteError


_UMASK = None


def _file_mode() -> int:
    """The mode a plain ``open`` gives a new file: 0o666 less the process's umask."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """Open a temporary file beside ``path`` for writing; on success it is renamed to ``path``.

    A reader, or a run killed at any moment, sees either the old file or the new one,
    never half of one. ``mode`` is "w" (text) or "wb". The file gets the permissions a
    plain ``open`` would give it (mkstemp's are 0600, which would keep colleagues on a
    shared cluster from reading a run). A write error (a full disk, a missing permission)
    is a ``WriteError`` naming ``path``; the old file stays as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        cause = os_error_behind(exc)
        if cause is not None:
            raise WriteError(f"cannot write {path}: {cause.strerror or cause}") from exc
        raise


def os_error_behind(exc: BaseException) -> OSError | None:
    """The OSError that ``exc`` is, or that caused it, however it was wrapped: torch.save reports the
    file's OSError (a full disk, EFBIG past a file-size limit) as a RuntimeError whose wording
    depends on where in the file it failed ("file write failed", "unexpected pos ..."), the
    OSError in its ``__context__``. None for anything else (an interrupt, a bug)."""
    if not isinstance(exc, Exception):
        return None
    todo, seen = [exc], set()
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        todo += [exc.__context__, exc.__cause__]  # the cause is looked at first
    return None


def write_atomic(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)
