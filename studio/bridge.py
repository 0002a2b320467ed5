"""The async bridge: the ONLY owner of the engine thread (README: "Where things are"; docs/STUDIO.md).

One ``threading.Thread`` runs jobs (load, generate, branch, evaluate, train) one at a time from a
queue that the GUI can see, reorder and cancel. A job's work is a function of a ``CancelToken``
that may return an engine generator; the engine thread drives it and hands what it yields to the
asyncio loop with ``call_soon_threadsafe``. Widgets ``await`` a job for its result and
``async for`` over it for its snapshots. Heavy previews are coalesced (the newest wins: older
pending snapshots lose their ``state``/``prediction`` payload but are still delivered, so no
event is ever dropped). Errors raised by the work are re-raised in the awaiting coroutine.

The GUI thread never blocks on the engine: it only takes a lock that guards a short list.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio import enginelink, gcguard
from studio.enginelink import eng

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"


@dataclass(frozen=True)
class ModelHandle:
    """What the GUI knows about a model that lives on the engine thread."""

    key: int
    name: str
    config: Any  # eng.ModelConfig
    card: dict = field(default_factory=dict)
    path: str = ""
    untrained: bool = False
    num_parameters: int = 0


def strip_preview(item: Any) -> Any:
    """The light version of a superseded snapshot: a SampleStep without its tensors."""
    if isinstance(item, eng.SampleStep) and (item.state is not None or item.prediction is not None):
        return dataclasses.replace(item, state=None, prediction=None)
    return None


def is_preview(item: Any) -> bool:
    """True for snapshots that carry a heavy payload that may be coalesced."""
    return isinstance(item, eng.SampleStep) and item.state is not None


class Job:
    """One unit of engine work. Await it for the result; iterate it for its snapshots."""

    _ids = itertools.count(1)

    def __init__(self, bridge: Bridge, kind: str, label: str, work: Callable[[eng.CancelToken], Any]) -> None:
        self.id = next(Job._ids)
        self.kind = kind
        self.label = label
        self.status = QUEUED
        self.token = eng.CancelToken()
        self.progress = 0.0  # 0..1 when known
        self.error: BaseException | None = None
        self.background = False
        self.meta: dict[str, Any] = {}  # e.g. a plain generation's model and request (Bridge.generate)
        self.submitted = time.perf_counter()
        self.started: float | None = None
        self.finished: float | None = None
        self._bridge = bridge
        self._work = work
        self._future: asyncio.Future = bridge.loop.create_future()
        self._items: collections.deque = collections.deque()  # GUI side, delivered in order
        self._wake: asyncio.Event = asyncio.Event()
        self._running_evt: asyncio.Event = asyncio.Event()
        self._pending: list = []  # engine side, guarded by bridge._lock
        self._flush_scheduled = False
        self._ended = False  # GUI side: no more items will come

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind!r}, {self.label!r}, {self.status})"

    def cancel(self) -> None:
        """Stop the job: drop it if queued, ask it to stop at its next step if running."""
        self._bridge.cancel(self)

    def done(self) -> bool:
        """True once the job has finished (in any way) on the GUI side."""
        return self._future.done()

    async def wait_started(self) -> None:
        """Return once the job runs (or has finished without running, e.g. cancelled in the queue)."""
        await self._running_evt.wait()

    def __await__(self):
        return self._future.__await__()

    def result(self) -> Any:
        """The result (raises if the job failed or is not done yet)."""
        return self._future.result()

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()

    def _deliver(self, items: list) -> None:
        # GUI thread: coalesce previews that nobody has consumed yet, then append
        for item in items:
            if is_preview(item):
                for i, old in enumerate(self._items):
                    light = strip_preview(old)
                    if light is not None:
                        self._items[i] = light
            self._items.append(item)
            self._bridge._observe(self, item)
        self._wake.set()


class Bridge(QObject):
    """Engine thread + job queue + async API. Create it on the GUI thread with a running loop."""

    queue_changed = Signal()  # the list of jobs or a status changed
    job_finished = Signal(object)  # Job

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loop = loop or asyncio.get_event_loop()
        self._lock = threading.Condition()
        self._queue: list[Job] = []
        self._running: Job | None = None
        self._stop = False
        self._models: dict[int, Any] = {}  # engine thread only
        self._keys = itertools.count(1)
        # before the thread starts: no Qt object Python owns is ever destroyed on the engine thread
        self._collector = gcguard.GuiThreadCollector(self)
        self._thread = threading.Thread(target=self._engine_main, name="prime-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ queue (GUI side)
    def submit(
        self,
        kind: str,
        label: str,
        work: Callable[[eng.CancelToken], Any],
        background: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``work(token)`` to run on the engine thread; returns the job at once.

        ``background`` jobs (e.g. the warm-up) wait behind every job submitted later. ``meta``
        says what the job does for those who watch the queue (set before ``queue_changed``).
        """
        job = Job(self, kind, label, work)
        job.background = background
        job.meta = dict(meta or {})
        with self._lock:
            if self._stop:
                raise RuntimeError("the engine bridge is closed")
            if background:
                self._queue.append(job)
            else:  # ahead of queued background jobs
                i = next((i for i, j in enumerate(self._queue) if j.background), len(self._queue))
                self._queue.insert(i, job)
            self._lock.notify_all()
        self.queue_changed.emit()
        return job

    def jobs(self) -> list[Job]:
        """The running job (if any) followed by the queued ones, in order."""
        with self._lock:
            return ([self._running] if self._running else []) + list(self._queue)

    def move(self, job: Job, offset: int) -> None:
        """Move a queued job up (offset < 0) or down in the queue."""
        with self._lock:
            if job not in self._queue:
                return
            i = self._queue.index(job)
            j = max(0, min(len(self._queue) - 1, i + offset))
            self._queue.insert(j, self._queue.pop(i))
        self.queue_changed.emit()

    def cancel(self, job: Job) -> None:
        """Cancel a queued job (it never runs) or ask a running one to stop at its next step."""
        job.token.cancel()
        with self._lock:
            dropped = job in self._queue
            if dropped:
                self._queue.remove(job)
        if dropped:
            job.status = CANCELLED
            self._finish(job, None, None)
        self.queue_changed.emit()

    def cancel_all(self) -> None:
        """Cancel every queued and running job."""
        for job in self.jobs():
            self.cancel(job)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        with self._lock:
            return self._running is not None or bool(self._queue)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the engine thread (at its next step boundary)."""
        self.cancel_all()
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a step that takes > timeout
            log.warning("engine thread still finishing its current step")
        else:
            self._collector.release()  # (a thread still running keeps collection on this thread)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (no new jobs accepted)."""
        with self._lock:
            return self._stop

    @property
    def thread(self) -> threading.Thread:
        """The engine thread (for tests)."""
        return self._thread

    # ------------------------------------------------------------------ engine thread
    def _engine_main(self) -> None:
        eng.configure_cpu_threads(reserve=1)  # leave a core for the window
        while True:
            with self._lock:
                while not self._queue and not self._stop:
                    self._lock.wait()
                if self._stop and not self._queue:
                    return
                job = self._queue.pop(0)
                self._running = job
            self._call(self._started, job)
            result, error = None, None
            try:
                result = self._drive(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                error = exc
                log.exception("job %s failed", job.label)
            with self._lock:
                self._running = None
            self._call(self._finish_from_engine, job, result, error)

    def _drive(self, job: Job) -> Any:
        if job.token.cancelled:
            return None
        out = job._work(job.token)
        if not isinstance(out, Generator):
            return out
        while True:
            try:
                item = next(out)
            except StopIteration as stop:
                return stop.value
            self._post(job, item)
            time.sleep(0)  # let the GUI thread take the GIL between steps

    def _post(self, job: Job, item: Any) -> None:
        with self._lock:
            if is_preview(item):  # newest wins: strip older undelivered previews
                job._pending = [strip_preview(p) or p for p in job._pending]
            job._pending.append(item)
            if job._flush_scheduled:
                return
            job._flush_scheduled = True
        self._call(self._flush, job)

    def _call(self, fn: Callable, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed at shutdown
            pass

    # ------------------------------------------------------------------ GUI-side callbacks
    def _flush(self, job: Job) -> None:
        with self._lock:
            items, job._pending = job._pending, []
            job._flush_scheduled = False
        if items:
            job._deliver(items)

    def _started(self, job: Job) -> None:
        if job.status == QUEUED:
            job.status = RUNNING
            job.started = time.perf_counter()
        job._running_evt.set()
        self.queue_changed.emit()

    def _finish_from_engine(self, job: Job, result: Any, error: BaseException | None) -> None:
        self._flush(job)
        if error is not None:
            job.status = FAILED
        elif job.token.cancelled or getattr(result, "cancelled", False):
            job.status = CANCELLED
        else:
            job.status = DONE
        self._finish(job, result, error)
        self.queue_changed.emit()

    def _finish(self, job: Job, result: Any, error: BaseException | None) -> None:
        job.finished = time.perf_counter()
        job._ended = True
        job._running_evt.set()
        job._wake.set()
        if not job._future.done():
            if error is not None:
                job.error = error
                job._future.set_exception(error)
            else:
                job._future.set_result(result)
        self.job_finished.emit(job)

    def _observe(self, job: Job, item: Any) -> None:
        step = getattr(item, "step", None)
        total = getattr(item, "steps", None) or getattr(item, "total_steps", None)
        if step is not None and total:
            job.progress = min(1.0, step / total)
            if job.kind == "train":  # the queue row shows a run's length (meta, set once)
                job.meta.setdefault("steps", int(total))

    # ------------------------------------------------------------------ jobs
    def load(self, source: Any, name: str | None = None) -> Job:
        """Load a model file / library name (or build a random one from an ``eng.ModelConfig``).

        The result is a :class:`ModelHandle`; the model itself stays on the engine thread.
        """
        if isinstance(source, eng.ModelConfig):
            label = name or f"random {source.modality} model"
        else:
            label = name or (str(source) if isinstance(source, (str, Path)) else "in-memory model")

        def work(token: eng.CancelToken) -> ModelHandle:
            model, card, path, untrained = enginelink.load_model(source)
            key = next(self._keys)
            self._models[key] = model
            return ModelHandle(
                key,
                name or enginelink.model_name(source, card),
                model.config,
                card,
                path,
                untrained,
                enginelink.num_parameters(model),
            )

        return self.submit("load", f"load {label}", work)

    def unload(self, handle: ModelHandle) -> Job:
        """Forget a loaded model (frees its memory on the engine thread)."""
        return self.submit(
            "unload", f"unload {handle.name}", lambda token: self._models.pop(handle.key, None) and None
        )

    def generate(self, handle: ModelHandle, request: Any, label: str | None = None) -> Job:
        """Sample with ``eng.iter_sample``; snapshots are ``SampleStep``, result ``SampleResult``.

        Without a ``label`` it is a plain generation from the settings alone (inpaint, detail and
        infill give their own label: they need their parent output): its ``meta`` has
        ``plain=True``, the model and the request, so that it can be queued again after a crash.
        """

        def work(token: eng.CancelToken):
            return eng.iter_sample(self._models[handle.key], request, cancel=token)

        meta = {"plain": label is None, "model_path": handle.path, "model": handle.name, "request": request}
        return self.submit(
            "generate",
            label or f"generate {request.num_samples}\u00d7{request.steps} ({handle.name})",
            work,
            meta=meta,
        )

    def branch(
        self, handle: ModelHandle, parent: Any, step: int, request: Any, label: str | None = None
    ) -> Job:
        """Continue ``parent`` (a Trajectory) from ``step`` with ``request`` (new seed)."""

        def work(token: eng.CancelToken):
            return eng.iter_branch(self._models[handle.key], parent, step, request, cancel=token)

        meta = {"model": handle.name, "request": request, "branch_step": step}
        return self.submit("branch", label or f"branch at step {step} ({handle.name})", work, meta=meta)

    def probabilities(self, handle: ModelHandle, state: Any) -> Job:
        """Filtered p_theta(x | y) for a state (N, L, ell) -> probabilities (N, L, C) (float32)."""

        def work(token: eng.CancelToken):
            return enginelink.probabilities(self._models[handle.key], state)

        # asked for by the hover text, not by the user: not listed in the queue
        return self.submit("evaluate", f"probabilities ({handle.name})", work, meta={"internal": True})

    def warm_up(self) -> Job:
        """Do the one-time imports that torch does lazily on first use.

        The optimiser pulls in ``torch._dynamo``: seconds of GIL-holding module loading. Run once
        at start-up so the stall does not land in the middle of the first training run.
        """

        def work(token: eng.CancelToken) -> None:
            import torch

            param = torch.nn.Parameter(torch.zeros(1))
            optimiser = torch.optim.AdamW([param], lr=1e-3)
            param.grad = torch.zeros(1)
            optimiser.step()

        return self.submit(
            "load", "warm-up (one-time imports)", work, background=True, meta={"internal": True}
        )

    def evaluate(self, handle: ModelHandle, data: Any, **options: Any) -> Job:
        """The valid bound of a loaded model on ``data`` (``engine.training.evaluate``)."""

        def work(token: eng.CancelToken):
            return eng.evaluate(self._models[handle.key], data, **options)

        return self.submit("evaluate", f"evaluate {handle.name}", work)

    def train(
        self,
        model: Any,
        train_config: Any,
        data: Any,
        out_path: Any,
        resume: bool = False,
        label: str | None = None,
        **options: Any,
    ) -> Job:
        """Run ``engine.training.iter_train``; snapshots are ``TrainEvent`` (never dropped).

        ``model``: a ModelConfig (new model), a model file path, or a :class:`ModelHandle` of a
        loaded model (fine-tuning starts from its current weights).
        """

        def work(token: eng.CancelToken):
            source = self._models[model.key] if isinstance(model, ModelHandle) else model
            return eng.iter_train(
                source, train_config, data, out_path, cancel=token, resume=resume, **options
            )

        meta = {"out": Path(str(out_path)).name, "steps": getattr(train_config, "steps", None)}
        return self.submit("train", label or f"train \u2192 {Path(str(out_path)).name}", work, meta=meta)
