"""GUI responsiveness benchmark: ``python -m studio.bench [--json]``.

Measures, offscreen, with the real bridge and renderer:

- **event-loop lateness**: a 10 ms QTimer on the qasync loop records how late each tick fires
  while the engine thread (through :class:`studio.bridge.Bridge`) is idle, generates (previews
  rendered as the window does, at most 15 per second) and trains. Reported p50 / p99 / max in ms.
  Targets: p99 < 50 ms, max < 200 ms.
- **scrub render time**: rebuilding and rendering any step of a 64-step sample
  (``Trajectory.state_at(k)`` + :meth:`studio.render.Renderer.render`). Target < 16 ms.

A benchmark, not a test: it reports numbers and exits 0; ``--check`` exits 1 when a target is missed.

``--soak N`` instead drives the real main window offscreen, as a user would, through N
generations (default 64 samples x 256 steps of the bundled ``digits-prime``: live previews,
timeline, history, saved outputs) and then a training run on the Train tab, in a throw-away data
folder. It reports survival, resident memory (``VmRSS``) after each phase, event-loop lateness
per phase and the drift of ``sys.getrefcount(None)`` (a leaking Qt binding lowers it once per
void Qt call until CPython aborts; Python 3.12+ has an immortal None, so it cannot drift there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

TIMER_MS = 10
IMMORTAL_NONE = sys.version_info >= (3, 12)
TARGETS = {"lateness_p99_ms": 50.0, "lateness_max_ms": 200.0, "render_max_ms": 16.0}


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of a list (0s when empty)."""
    if not values:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]

    return {"n": len(s), "p50": q(0.5), "p99": q(0.99), "max": s[-1]}


class LatenessProbe:
    """A precise 10 ms QTimer recording how late each tick fires (ms)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.samples: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TIMER_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples.append(max(0.0, (now - self._last) * 1000 - TIMER_MS))
        self._last = now

    def start(self) -> None:
        """Start recording afresh."""
        self.samples, self._last = [], None
        self.timer.start()

    def stop(self) -> list[float]:
        """Stop and return the recorded lateness values."""
        self.timer.stop()
        return list(self.samples)


async def phase_idle(probe: LatenessProbe, seconds: float) -> list[float]:
    """Lateness with nothing running (the floor of this machine)."""
    probe.start()
    await asyncio.sleep(seconds)
    return probe.stop()


async def phase_generate(probe: LatenessProbe, bridge: Any, handle: Any, renderer: Any, args: Any) -> dict:
    """Lateness while sampling through the bridge, rendering previews like the window."""
    from studio.enginelink import eng

    request = eng.SampleRequest(num_samples=args.samples, steps=args.steps, seed=0)
    probe.start()
    started = time.perf_counter()
    job = bridge.generate(handle, request)
    last, renders = 0.0, 0
    async for snap in job:
        now = time.perf_counter()
        if snap.state is not None and now - last >= 1 / 15:
            renderer.render(snap.state)
            last, renders = now, renders + 1
    result = await job
    lateness = probe.stop()
    return {
        "lateness": lateness,
        "seconds": time.perf_counter() - started,
        "renders": renders,
        "nfe": sum(result.nfe) / len(result.nfe),
    }


async def phase_train(probe: LatenessProbe, bridge: Any, config: Any, args: Any) -> dict:
    """Lateness while training through the bridge (events consumed as they come)."""
    import numpy as np

    from studio.enginelink import eng

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.num_classes, (256, config.seq_length))
    data = eng.array_dataset(tokens, config.num_classes, modality=config.modality)
    train_config = eng.TrainConfig(
        steps=args.train_steps,
        batch_size=16,
        warmup=5,
        eval_every=0,
        preview_every=0,
        checkpoint_every=0,
        device="cpu",
    )
    out = os.path.join(tempfile.mkdtemp(prefix="prime-bench-"), "bench.safetensors")

    def work(token: Any) -> Any:
        return eng.iter_train(config, train_config, data, out, cancel=token)

    probe.start()
    started = time.perf_counter()
    job = bridge.submit("train", "bench training", work)
    events = 0
    async for _event in job:
        events += 1
    await job
    lateness = probe.stop()
    return {"lateness": lateness, "seconds": time.perf_counter() - started, "events": events}


def render_times(config: Any, samples: int, steps: int = 64, repeats: int = 5) -> dict[str, Any]:
    """ms to rebuild and render each step 0..steps of one sampled trajectory.

    Each step is timed ``repeats`` times and its best time kept (the cost of rendering that step,
    without the scheduler noise of a shared machine); the worst single try is reported too.
    """
    import torch

    from studio.enginelink import eng
    from studio.render import Renderer

    torch.manual_seed(0)
    model = eng.PrimeModel(config).eval()
    result = eng.sample(model, eng.SampleRequest(num_samples=samples, steps=steps, seed=0))
    renderer = Renderer(config)
    best, worst = [], 0.0
    for k in range(steps + 1):
        tries = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            renderer.render(result.trajectory.state_at(k))
            tries.append((time.perf_counter() - t0) * 1000)
        best.append(min(tries))
        worst = max(worst, max(tries))
    return {
        "times": best,
        "worst_try": worst,
        "ell": config.ell,
        "shape": f"{samples}x{config.height}x{config.width}x{config.channels}",
    }


async def run_all(args: Any) -> dict[str, Any]:
    """All phases; returns the report."""
    from studio.bridge import Bridge
    from studio.enginelink import eng
    from studio.render import Renderer

    loop = asyncio.get_event_loop()
    bridge = Bridge(loop)
    probe = LatenessProbe()
    config = eng.ModelConfig(
        modality="image",
        num_classes=256,
        ell=args.ell,
        height=args.size,
        width=args.size,
        channels=args.channels,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=4,
    )
    report: dict[str, Any] = {
        "config": {
            "image": f"{args.size}x{args.size}x{args.channels}",
            "ell": args.ell,
            "d_model": args.d_model,
            "n_layers": args.layers,
            "samples": args.samples,
            "steps": args.steps,
        }
    }
    try:
        import torch

        torch.manual_seed(0)
        handle = await bridge.load(eng.PrimeModel(config))
        renderer = Renderer(config)
        report["idle"] = percentiles(await phase_idle(probe, args.idle_seconds))
        gen = await phase_generate(probe, bridge, handle, renderer, args)
        report["generate"] = {**percentiles(gen.pop("lateness")), **gen}
        if not args.no_train:
            probe.start()
            started = time.perf_counter()
            await bridge.warm_up()  # what the studio does once at start-up
            report["warm_up"] = {**percentiles(probe.stop()), "seconds": time.perf_counter() - started}
            train = await phase_train(probe, bridge, config, args)
            report["train"] = {**percentiles(train.pop("lateness")), **train}
    finally:
        bridge.close()
    # rendering cost depends on the image, not the network: a tiny backbone samples the trajectory
    render_config = config.replace(
        height=args.render_size,
        width=args.render_size,
        channels=args.render_channels,
        d_model=16,
        n_layers=1,
        n_heads=2,
    )
    render = render_times(render_config, args.render_samples)
    report["render"] = {**percentiles(render.pop("times")), **render}
    worst_p99 = max(report[k]["p99"] for k in ("generate", "train") if k in report)
    worst_max = max(report[k]["max"] for k in ("generate", "train") if k in report)
    report["targets"] = {
        "lateness_p99_ms": {
            "target": TARGETS["lateness_p99_ms"],
            "value": worst_p99,
            "ok": worst_p99 < TARGETS["lateness_p99_ms"],
        },
        "lateness_max_ms": {
            "target": TARGETS["lateness_max_ms"],
            "value": worst_max,
            "ok": worst_max < TARGETS["lateness_max_ms"],
        },
        "render_max_ms": {
            "target": TARGETS["render_max_ms"],
            "value": report["render"]["max"],
            "ok": report["render"]["max"] < TARGETS["render_max_ms"],
        },
    }
    return report


def resident_mb() -> float:
    """Resident memory of this process in MiB (``VmRSS``; else the peak from ``getrusage``)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


async def run_soak(args: Any) -> dict[str, Any]:
    """The soak: the real window through ``args.soak`` generations and a training run."""
    from PySide6.QtWidgets import QApplication

    from studio.bridge import Bridge
    from studio.mainwindow import MainWindow
    from studio.settings import Settings
    from studio.train.selftest import self_test_train

    app = QApplication.instance()
    app.setQuitOnLastWindowClosed(False)  # closing the window at the end must not stop the loop
    loop = asyncio.get_event_loop()
    home = os.environ["PRIME_STUDIO_HOME"]
    bridge = Bridge(loop)
    window = MainWindow(bridge, Settings(os.path.join(home, "settings.ini")))
    window.resize(1400, 860)
    window.show()
    probe = LatenessProbe()
    report: dict[str, Any] = {
        "soak": {
            "generations": args.soak,
            "samples": args.soak_samples,
            "steps": args.soak_steps,
            "model": args.soak_model,
            "python": sys.version.split()[0],
            "pyside6": __import__("PySide6").__version__,
        },
        "phases": [],
    }
    phases = report["phases"]
    none0 = sys.getrefcount(None)

    def phase(name: str, started: float, lateness: list[float], **extra: Any) -> None:
        row = {
            "phase": name,
            "seconds": time.perf_counter() - started,
            "rss_mb": resident_mb(),
            "none_drift": sys.getrefcount(None) - none0,
            **percentiles(lateness),
            **extra,
        }
        phases.append(row)
        print(
            f"soak: {name}: {row['seconds']:.1f} s, RSS {row['rss_mb']:.0f} MiB, "
            f"lateness p99 {row['p99']:.1f} / max {row['max']:.1f} ms, None drift {row['none_drift']:+d}",
            file=sys.stderr,
            flush=True,
        )

    try:
        started = time.perf_counter()
        probe.start()
        await window.session.load_model(args.soak_model)
        await bridge.warm_up()  # the one-time torch imports the studio does 3 s after opening
        await asyncio.sleep(0.5)  # the window settles
        phase("start (model, warm-up)", started, probe.stop())
        for i in range(args.soak):
            window.generate_panel.set_values(
                {"num_samples": args.soak_samples, "steps": args.soak_steps, "seed": i, "seed_mode": "fixed"}
            )
            started = time.perf_counter()
            probe.start()
            entry = await window.session.generate()
            lateness = probe.stop()
            if entry is None or entry.result.cancelled or window.timeline.entries() != args.soak_steps:
                raise RuntimeError(f"generation {i + 1} did not finish")
            phase(f"generation {i + 1}", started, lateness, nfe=sum(entry.result.nfe) / len(entry.result.nfe))
        started = time.perf_counter()
        probe.start()
        await self_test_train(window, args)  # the Train tab: check a folder, train 40 steps, save
        phase("training run", started, probe.stop())
        if window.errors:
            raise RuntimeError(f"error dialogs were shown: {window.errors}")
        report["survived"] = True
    finally:
        window.close()
        bridge.close()
    rows = phases[1:]  # after the start
    first = rows[0] if rows else phases[0]
    report["summary"] = {
        "survived": report.get("survived", False),
        "rss_start_mb": phases[0]["rss_mb"],
        "rss_end_mb": phases[-1]["rss_mb"],
        "rss_growth_mb": phases[-1]["rss_mb"] - phases[0]["rss_mb"],
        "rss_growth_after_first_generation_mb": phases[-1]["rss_mb"] - first["rss_mb"],
        "lateness_p99_ms": max(r["p99"] for r in rows) if rows else 0.0,
        "lateness_max_ms": max(r["max"] for r in rows) if rows else 0.0,
        "none_drift": phases[-1]["none_drift"],
        "none_immortal": IMMORTAL_NONE,
    }
    return report


def format_soak(report: dict[str, Any]) -> str:
    """The soak report as a plain-text table."""
    cfg, summary = report["soak"], report["summary"]
    lines = [
        f"Prime Studio soak: {cfg['generations']} generations of {cfg['samples']} x {cfg['steps']} steps "
        f"({cfg['model']}) + a training run, real window offscreen; Python {cfg['python']}, "
        f"PySide6 {cfg['pyside6']}",
        "",
        f"{'phase':<22}{'s':>8}{'RSS MiB':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'None drift':>12}",
    ]
    for r in report["phases"]:
        lines.append(
            f"{r['phase']:<22}{r['seconds']:>8.1f}{r['rss_mb']:>10.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
            f"{r['max']:>9.1f}{r['none_drift']:>+12d}"
        )
    lines += [
        "",
        f"survived: {'yes' if summary['survived'] else 'NO'}; RSS {summary['rss_start_mb']:.0f} -> "
        f"{summary['rss_end_mb']:.0f} MiB ({summary['rss_growth_mb']:+.0f}; "
        f"{summary['rss_growth_after_first_generation_mb']:+.0f} after the first generation); "
        f"worst lateness p99 {summary['lateness_p99_ms']:.1f} ms, max {summary['lateness_max_ms']:.1f} ms; "
        f"refcount(None) drift {summary['none_drift']:+d}"
        + (" (None is immortal on this Python)" if summary["none_immortal"] else ""),
    ]
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    cfg = report["config"]
    lines = [
        f"Prime Studio GUI benchmark (model {cfg['image']}, ell={cfg['ell']}, d_model={cfg['d_model']}, "
        f"{cfg['n_layers']} layers; {cfg['samples']} samples x {cfg['steps']} steps)",
        "",
        f"{'phase':<28}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}  notes",
    ]
    notes = {
        "idle": "engine idle",
        "generate": lambda r: f"{r['seconds']:.1f} s, {r['renders']} previews, NFE {r['nfe']:.1f}",
        "warm_up": lambda r: f"{r['seconds']:.1f} s, once per session at start-up",
        "train": lambda r: f"{r['seconds']:.1f} s, {r['events']} events",
        "render": lambda r: f"state_at(k)+render {r['shape']}, best of 5; worst try {r['worst_try']:.1f}",
    }
    titles = {
        "idle": "loop lateness, idle",
        "generate": "loop lateness, generating",
        "warm_up": "loop lateness, warm-up",
        "train": "loop lateness, training",
        "render": "scrub render time",
    }
    for key in ("idle", "generate", "warm_up", "train", "render"):
        if key not in report:
            continue
        r = report[key]
        note = notes[key] if isinstance(notes[key], str) else notes[key](r)
        lines.append(
            f"{titles[key]:<28}{r['n']:>7}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['max']:>10.2f}  {note}"
        )
    lines.append("")
    for name, t in report["targets"].items():
        lines.append(
            f"{name:<20} {t['value']:8.2f} (target < {t['target']:g})  {'ok' if t['ok'] else 'MISSED'}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m studio.bench", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--size", type=int, default=16, help="image side (default 16)")
    p.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--ell", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=30)
    p.add_argument("--no-train", action="store_true", help="skip the training phase")
    p.add_argument("--render-samples", type=int, default=16, help="samples in the scrub-render trajectory")
    p.add_argument("--render-size", type=int, default=32, help="image side of the scrub-render trajectory")
    p.add_argument("--render-channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--idle-seconds", type=float, default=1.0)
    p.add_argument(
        "--soak",
        type=int,
        metavar="N",
        help="drive the real window through N generations and a training run (see above)",
    )
    p.add_argument("--soak-model", default="digits-prime", help="library name or path (default digits-prime)")
    p.add_argument("--soak-samples", type=int, default=64)
    p.add_argument("--soak-steps", type=int, default=256)
    args = p.parse_args(argv)
    if args.soak is not None and args.soak < 1:
        p.error("--soak needs at least 1 generation")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON)."""
    args = parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtWidgets import QApplication

    if args.soak is not None:  # a throw-away data folder: settings, outputs, runs, trained models
        home = tempfile.mkdtemp(prefix="prime-soak-")
        os.environ["PRIME_STUDIO_HOME"] = home
    app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    if args.soak is not None:
        import shutil

        try:
            with loop:
                report = loop.run_until_complete(run_soak(args))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        print(json.dumps(report, indent=2) if args.json else format_soak(report))
        return 0 if report["summary"]["survived"] else 1
    with loop:
        report = loop.run_until_complete(run_all(args))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    ok = all(t["ok"] for t in report["targets"].values())
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
