"""TensorBoard event files of a resumed run: what the interrupted segment logged after its checkpoint goes.

TensorBoard has a purge mechanism (a writer's `purge_step`), but it depends on the order in which it reads
event files, which is by name: two files written in the same second by a process that has made ten writers
sort wrongly, and the purge then hides the resumed run's own final points. Rewriting the old files holds
whatever the order.
"""

import io
from pathlib import Path

from initlab.files import not_a_file, write_atomic


def trim(path: Path, step: int) -> None:
    """Rewrite one event file without the events at `step` or later (file metadata is kept)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    dropped = 0
    for record in RawEventFileLoader(str(path)).Load():
        event = Event.FromString(record)
        if event.step >= step and not event.HasField("file_version"):
            dropped += 1
            continue
        writer.write(record)
    if dropped:
        write_atomic(path, buf.getvalue())


def carry_over(old_dir: Path, new_dir: Path, step: int) -> None:
    """The run's event files up to its checkpoint's `step`, in the dir it resumes in (copied if elsewhere)."""
    for f in sorted(old_dir.glob("events.out.tfevents.*")):
        if not_a_file(f, follow=False):  # a link or a FIFO is not the run's: never followed, never opened
            continue
        target = new_dir / f.name
        if f.resolve() != target.resolve():
            write_atomic(target, f.read_bytes())
        trim(target, step)
