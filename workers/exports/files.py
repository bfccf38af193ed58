"""Writing an export file: atomically, with the permissions any new file of the user gets."""

from __future__ import annotations

import os

from workers.store import atomic_write_bytes


def _umask() -> int:
    # There is no read-only umask call; setting it back at once is safe in the API process
    # (green threads only switch at I/O) and in a worker's single task thread.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_export(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp + rename), creating missing folders.

    The temp file behind the atomic write is created 0600; an export is for people (an
    editor on the same share, an NLE running as another user), so it gets ``0666 & ~umask``
    like a file saved by any other program.
    """
    atomic_write_bytes(path, data)
    try:
        os.chmod(path, 0o666 & ~_umask())
    except OSError:
        pass  # some network shares refuse chmod; the file itself is written
