"""The host side of a render run on its own thread, so that the device never waits for the disk.

`atlas render` hands each rendered, judged batch to a `Writer`: one thread that runs the batch's
host work (waiting for its copy to the host, PNG encoding, statistics, the cache's crash-safe
entry writes) while the next batch renders.  The queue holds at most `depth` batches beyond the
one in hand, so the renderer waits rather than piling pictures up: memory stays flat.

Errors: the writer's first error stops it (nothing after it is written) and is raised, as it was
raised, in the rendering thread at its next `check`, `submit` or `close`, so a full disk is still
one line.  A render that stops for its own reason (an error, Ctrl-C, SIGTERM) first lets the
writer finish what is queued: those pictures are rendered already.  A second interrupt during
that wait abandons the queue after the entry in hand; each entry is written whole or not at all.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

import torch

Task = Callable[[], None]
_STOP = None


class Writer:
    """One thread that runs tasks in order, at most `depth` of them waiting.

    `threaded=False` runs each task at once in the caller's thread: a render on the CPU has no device
    to overlap with, and a second thread there only takes cycles from the render's own threads (the
    `cpu` subset rendered 10-25% slower with it on 2 cores)."""

    def __init__(self, depth: int = 1, threaded: bool = True) -> None:
        self._tasks: queue.Queue[Task | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="atlas-writer", daemon=True) if threaded else None
        if self._thread is not None:
            self._thread.start()

    @property
    def abandoned(self) -> bool:
        """True once the run asked the writer to stop now: a task should stop between entries."""
        return self._abandoned.is_set()

    def check(self) -> None:
        """Raise the writer's error, if it has one (cheap: the renderer asks at every step)."""
        if self._error is not None:
            raise self._error

    def submit(self, task: Task) -> None:
        """Queue `task`; waits while the queue is full, and raises the writer's error instead of waiting on."""
        if self._thread is None:
            self.check()
            task()
            return
        while True:
            self.check()
            try:
                self._tasks.put(task, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Run what is queued, stop the thread, and raise the writer's error if it had one."""
        self._stop()
        self.check()

    def drain(self) -> None:
        """The run stops for its own reason: let the writer finish what is queued, then stop it, raising
        nothing of its own (the run reports why it stopped).  A second interrupt meanwhile abandons the
        queue after the entry in hand."""
        try:
            self._stop()
        except BaseException:  # a second Ctrl-C or a SIGTERM (atlas.cli.Terminated) during the wait
            self._abandoned.set()
            if self._thread is not None:
                self._thread.join()
            raise

    def _stop(self) -> None:
        if self._thread is None:
            self._closed = True
            return
        if not self._closed:
            self._closed = True
            while self._thread.is_alive():  # the thread drops tasks after an error, so this never blocks for long
                try:
                    self._tasks.put(_STOP, timeout=0.1)
                    break
                except queue.Full:
                    continue
        self._thread.join()

    def _loop(self) -> None:
        while not self._abandoned.is_set():
            try:
                task = self._tasks.get(timeout=0.1)
            except queue.Empty:
                continue
            if task is _STOP:
                return
            if self._error is not None:
                continue  # drop it: keep taking tasks so that no submit ever waits on a dead writer
            try:
                task()
            except BaseException as exc:  # noqa: BLE001 - handed to the rendering thread, raised there
                self._error = exc


def to_host(tensors: Sequence[torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
    """Start moving `tensors` to the host; the returned call waits for them and gives them back.

    On a CUDA device the copy runs on a side stream into pinned memory: the writer thread then waits
    for this copy alone, not for the next batch's kernels queued on the default stream meanwhile.
    Elsewhere the copy is made now (on the CPU it is no copy at all)."""
    device = tensors[0].device
    if device.type != "cuda":
        host = [t.detach().cpu() for t in tensors]
        return lambda: host
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t.detach(), non_blocking=True)
                for t in tensors]
        for t in tensors:
            t.record_stream(stream)  # their memory is not reused before the copy is done
        done = torch.cuda.Event()
        done.record(stream)

    def wait() -> list[torch.Tensor]:
        done.synchronize()
        return host

    return wait
