"""Where the package writes files, and how: the run's folder; a temporary file, then an atomic rename, so that a
crash never leaves half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ['run_folder', 'write_json_atomically']


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomically(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder, then rename it.

    Either the previous content of ``path`` or the complete new one is on disk at any moment.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1)  # serialise first: a value JSON cannot hold fails before any file exists
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def run_folder(folder: Path | None, trainer: Any) -> Path | None:
    """The folder a callback writes the run's files to: ``folder`` when given, else the trainer logger's (e.g.
    ``lightning_logs/version_N``); ``None`` when neither is there.

    Call it on every process: Lightning's ``trainer.log_dir`` broadcasts rank 0's folder.
    """
    if folder is None and trainer.logger is None:
        return None
    return folder or Path(trainer.log_dir or trainer.default_root_dir)
