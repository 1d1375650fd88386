"""The garbage collector's pace during a run.

CPython runs a young-generation collection whenever the tracked objects allocated, less those freed, pass 700.
A run holds a few thousand records in flight (a source batch, the queues, the batches being worked on), each a
dict and a tuple, so that count crosses 700 every few dozen records: a file job spent a tenth of its CPU time
collecting (and promoting in-flight records to older generations, whose full collections then walked every
object of the process) without ever finding garbage, since records hold no reference cycles.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Young-generation threshold during a run: above what a run allocates and frees batch by batch, and above
#: what it holds a while with state (rejects waiting to be written, and a sink's commit group; each held its
#: record when this was measured): at 10,000 those survivors were walked again by each of the ~25 extra young
#: collections of a 300k-row stateful run with a quarter of its rows rejected (0.10 s by ``gc.callbacks``;
#: 0.02 s at 20,000, 0.01 s at 30,000). Not higher: garbage in reference cycles (a plugin's, such as an httpx
#: answer still linked to its stream) waits for a collection, and holds memory in proportion.
RUN_THRESHOLD = 20_000


@contextmanager
def run_pace() -> Iterator[None]:
    """Collect less often for the duration of a run; the previous thresholds come back afterwards.

    Garbage without cycles is freed at once whatever the thresholds; only cycles wait a little longer, and the
    memory they hold stays bounded by the threshold.
    """
    young, *older = gc.get_threshold()
    if young == 0 or young >= RUN_THRESHOLD:  # collection disabled, or already paced by the host program
        yield
        return
    gc.set_threshold(RUN_THRESHOLD, *older)
    try:
        yield
    finally:
        gc.set_threshold(young, *older)
