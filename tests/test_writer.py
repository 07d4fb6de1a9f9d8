"""The writer thread of `atlas render`: order, a bounded queue, errors raised where the render runs, draining."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from atlas.errors import AtlasError
from atlas.writer import Writer, to_host


def test_tasks_run_in_order_on_another_thread_and_close_waits_for_them():
    done: list[tuple[int, str]] = []
    writer = Writer(depth=1)
    for n in range(5):
        writer.submit(lambda n=n: (time.sleep(0.01), done.append((n, threading.current_thread().name))))
    writer.close()
    assert [n for n, _ in done] == list(range(5)) and {name for _, name in done} == {"atlas-writer"}


def test_an_unthreaded_writer_runs_each_task_at_once_where_it_is_submitted():
    done: list[str] = []
    writer = Writer(depth=1, threaded=False)
    writer.submit(lambda: done.append(threading.current_thread().name))
    assert done == [threading.current_thread().name]  # already run, in the caller's thread

    def full() -> None:
        raise AtlasError("disk full")

    with pytest.raises(AtlasError, match="disk full"):
        writer.submit(full)
    writer.close()
    writer.drain()


def test_submit_waits_while_one_task_is_queued():
    release = threading.Event()
    writer = Writer(depth=1)
    writer.submit(release.wait)  # in hand
    writer.submit(lambda: None)  # queued
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # the queue is full: the third waits
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.close()


def test_the_first_error_stops_the_writer_and_is_raised_by_check_submit_and_close():
    ran: list[int] = []

    def fail():
        raise AtlasError("disk full writing the cache")

    writer = Writer(depth=1)
    writer.submit(fail)
    deadline = time.monotonic() + 5
    with pytest.raises(AtlasError, match="disk full"):
        while time.monotonic() < deadline:
            writer.check()
            time.sleep(0.01)
    with pytest.raises(AtlasError, match="disk full"):
        writer.submit(lambda: ran.append(1))
    with pytest.raises(AtlasError, match="disk full"):
        writer.close()
    assert ran == []  # nothing runs after the error


def test_drain_finishes_what_is_queued_and_raises_nothing_of_its_own():
    done: list[int] = []
    writer = Writer(depth=2)
    writer.submit(lambda: (time.sleep(0.2), done.append(1)))
    writer.submit(lambda: done.append(2))
    writer.drain()  # as after Ctrl-C: the rendered pictures are still written
    assert done == [1, 2]


def test_on_the_cpu_the_host_copy_is_the_tensors_themselves():
    tensors = [torch.arange(4), torch.ones(2, 2)]
    host = to_host(tensors)()
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(host, tensors, strict=True))  # no copy
