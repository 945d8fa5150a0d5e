"""Files a run writes and reads: written whole (temp file + fsync + rename), read only when they are plain files.

A run never follows a link it did not make (a `.lock` or `metrics.json` that is a symlink would otherwise send
its writes elsewhere) and never opens a FIFO, device or socket (opening a FIFO blocks until a writer comes).
"""

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from initlab.errors import OutputError

KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}  # fmt: skip
SPECIAL = {KINDS[m] for m in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)}  # never written to or replaced


def not_a_file(path: str | Path, follow: bool = True) -> str | None:
    """None when `path` is a plain file; else what it is instead ("missing", "a directory", "a named pipe (FIFO)",
    ...). follow=False: a symbolic link is not followed but named."""
    try:
        mode = os.stat(path, follow_symlinks=follow).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return e.strerror or str(e)
    return None if stat.S_ISREG(mode) else KINDS.get(stat.S_IFMT(mode), "not a plain file")


def read_json(path: Path) -> Any:
    """The JSON in `path` if it is a plain file (not a link, FIFO or device) that parses; else None."""
    if not_a_file(path, follow=False):
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # RecursionError: '[' * 200000, nested past Python's stack
        return None


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file under the final name.

    The rename replaces a file or a symlink at `path` (the link's target is never written); a FIFO, device or
    socket there is refused. mkstemp makes the
    file 0600 whatever the umask; it gets the mode any other file would (0666 & ~umask). Any failure (a full
    disk, a vanished dir, a directory at `path`) raises OutputError naming the file, and leaves no temp file.
    """
    path = Path(path)
    kind = not_a_file(path, follow=False)
    if kind in SPECIAL:  # the rename would replace it: `--out /dev/full` once replaced the device with a report
        raise OutputError(f"could not write {path}: it is {kind}, not a file")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves the old file or the new, never half
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"could not write {path}: {e.strerror or e}") from e


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, so the file stays strict JSON (a diverged run's loss is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return [_finite(v) for v in obj] if isinstance(obj, list | tuple) else obj


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(_finite(obj), indent=2, sort_keys=True) + "\n")
