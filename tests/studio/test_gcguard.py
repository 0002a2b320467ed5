"""Reference cycles, Qt objects in them too, are collected on the GUI thread, never the engine's."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

from PySide6.QtCore import QObject, Qt

from studio import gcguard
from studio.bridge import Bridge


def _allocate_until(done, timeout: float = 10.0) -> int:
    """Keep allocating past gen 0's threshold (automatic collection would run in this thread)."""
    kept: list[list[int]] = []
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        kept += [[i] for i in range(2 * max(gc.get_threshold()[0], 700))]
        time.sleep(0.01)
    return len(kept)


async def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not collected in time"
        await asyncio.sleep(0.02)


def test_a_cycle_dropped_on_the_engine_thread_is_collected_on_the_gui_thread(bridge, run):
    where: list[str] = []

    class Node:
        def __del__(self) -> None:
            where.append(threading.current_thread().name)

    def work(_token):
        node = Node()
        node.me = node  # a cycle: only the collector frees it
        del node
        return _allocate_until(lambda: where)

    async def scenario():
        await bridge.submit("probe", "make garbage", work)
        await _until(lambda: where)

    run(scenario())
    assert where == ["MainThread"]


def test_a_qt_object_python_owns_is_destroyed_on_the_gui_thread(bridge, run):
    where: list[str] = []
    holder: list = [QObject()]  # a parentless QObject: Python owns it
    holder.append(holder)
    # a direct connection: the slot runs in the thread that runs the destructor
    holder[0].destroyed.connect(
        lambda *_: where.append(threading.current_thread().name), Qt.ConnectionType.DirectConnection
    )
    del holder  # garbage now; the engine thread is the one allocating next

    async def scenario():
        await bridge.submit("probe", "allocate", lambda _token: _allocate_until(lambda: where))
        await _until(lambda: where)

    run(scenario())
    assert where == ["MainThread"]


def test_automatic_collection_comes_back_when_the_last_bridge_closes(loop):
    assert gc.isenabled() and not gcguard.held()
    first, second = Bridge(loop), Bridge(loop)
    assert not gc.isenabled() and gcguard.held()
    first.close()
    assert not gc.isenabled()  # the second still runs its engine thread
    second.close()
    assert gc.isenabled() and not gcguard.held()
    second.close()  # closing twice does not release twice
    assert gc.isenabled()


def test_collect_due_follows_the_thresholds():
    thresholds = gc.get_threshold()
    gc.disable()
    try:
        gc.set_threshold(50, 3, 3)
        gc.collect()
        assert gcguard.collect_due() is None  # counts are 0 after a full collection
        kept = [[i] for i in range(200)]
        assert gcguard.collect_due() == 0 and gc.get_count()[0] < 50
        for _ in range(3):
            kept += [[i] for i in range(200)]
            gcguard.collect_due()
        assert gc.get_count()[1] > 3
        assert gcguard.collect_due() == 1 and gc.get_count()[1] == 0
        gc.set_threshold(0)  # 0 = collection off: nothing is collected
        kept += [[i] for i in range(200)]
        assert gcguard.collect_due() is None
        assert len(kept) == 1000
    finally:
        gc.set_threshold(*thresholds)
        gc.enable()
