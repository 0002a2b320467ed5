"""Polish (#16, items 5-7): Compare defaults and lockstep scrubbing, the library's double-click
and loaded marker, the card's tables and local times, chart axes, the run-time estimate."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

from conftest import image_config, text_config, tiny_model
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

import engine
from engine.files.modelfile import save_model
from studio.library import LOADED_MARK, PATH_ROLE, card_html, local_time
from studio.train import runs
from studio.train.chart import LineChart, axis_range, nice_ticks, step_range
from studio.workspace.compare import CURRENT, same_data, twin_of


def library_model(tmp_path, name, config, seed=0):
    """A tiny real model imported into the test's library under ``name``; its library path."""
    path = save_model(tmp_path / f"{name}.safetensors", tiny_model(config, seed), {"steps": 1})
    return str(engine.import_model(path, name))


def row_of(w, path):
    for i in range(w.library.list.count()):
        if w.library.list.item(i).data(PATH_ROLE) == path:
            return i
    raise AssertionError(f"{path} is not listed")


# ---------------------------------------------------------------------------- compare
def test_twin_is_the_other_ell_of_the_same_data():
    prime, mdm = image_config(ell=2), image_config(ell=1)
    other_shape = image_config(ell=1, height=6, width=6)
    other_levels = image_config(ell=1, num_classes=8)
    cands = [
        ("k1", "digits-mdm", mdm),
        ("k2", "big-mdm", other_shape),
        ("k3", "coarse-mdm", other_levels),
        ("k4", "digits-prime-copy", prime),
        ("k5", "faces-mdm", mdm),
    ]
    assert twin_of("digits-prime", prime, cands) == "k1"  # same data, ell=1, longest shared name
    assert twin_of("digits-mdm", mdm, cands) == "k4"  # the other way round: a Prime model
    assert twin_of("digits-prime", prime, cands[1:3]) is None  # different shape or levels: no twin
    assert not same_data(image_config(), text_config()) and same_data(text_config(ell=1), text_config())


def test_compare_offers_one_modality_defaults_b_to_the_twin_and_scrubs_in_lockstep(
    run, make_window, tmp_path
):
    prime = library_model(tmp_path, "toy-prime", image_config(ell=2))
    library_model(tmp_path, "toy-mdm", image_config(ell=1), seed=1)
    library_model(tmp_path, "toy-text", text_config())
    w = make_window()
    w.library.refresh()
    run(w.session.load_model(prime))
    c = w.compare
    c.refresh_models()
    offered = [c.b.model.itemText(i) for i in range(c.b.model.count())]
    assert "toy-text" not in offered and "toy-mdm" in offered  # only image models
    assert c.a.model.currentData() == CURRENT and c.a.model.currentText() == "toy-prime (loaded)"
    assert c.b.model.currentText() == "toy-mdm"  # B = the MDM twin
    assert [c.a.reveal.itemText(i) for i in range(2)] == ["Joint", "Marginal"]  # as in Generate
    # a choice the user makes stays while the loaded model stays
    c.b.model.setCurrentIndex(c.b.model.findData(CURRENT))
    c.refresh_models()
    assert c.b.model.currentData() == CURRENT
    c.b.model.setCurrentIndex(c.b.model.findText("toy-mdm"))

    c.samples.setValue(2)
    c.a.steps.setValue(8)
    c.b.steps.setValue(4)
    shown = []  # live preview: B's view changes while B generates
    c.b.view.set_image = lambda image, *a, _orig=c.b.view.set_image, **k: (
        shown.append(c.b.entry is None),
        _orig(image, *a, **k),
    )
    ea, eb = run(c.run_both())
    assert w.session.handle.path and w.session.handle.name == "toy-prime"  # comparing changed nothing
    assert eb.model.name == "toy-mdm" and (ea.trajectory.steps, eb.trajectory.steps) == (8, 4)
    assert True in shown, "B was not drawn while it generated"
    assert c.scrub.isEnabled() and c.scrub.maximum() == 8 and c.scrub.value() == 8

    def image_of(side):
        return side.view._image.copy()

    c.scrub.setValue(4)  # half-way through both
    assert c.steps_at(4) == (4, 2)
    renderer_a, renderer_b = w.session.renderer_for(ea.model), w.session.renderer_for(eb.model)
    assert image_of(c.a) == renderer_a.render(ea.trajectory.state_at(4))
    assert image_of(c.b) == renderer_b.render(eb.trajectory.state_at(2))
    assert c.scrub_label.text() == "A 4/8 \u00b7 B 2/4"
    c.scrub.setValue(0)
    assert image_of(c.a) == renderer_a.render(ea.trajectory.state_at(0))
    assert image_of(c.b) == renderer_b.render(eb.trajectory.state_at(0))
    assert image_of(c.a) != renderer_a.render(ea.trajectory.state_at(8))


# ---------------------------------------------------------------------------- library
def test_double_click_loads_and_marks_the_model(run, make_window, tmp_path):
    path = library_model(tmp_path, "toy-click", image_config())
    w = make_window()
    w.library.refresh()
    i = row_of(w, path)
    item = w.library.list.item(i)
    w.library.list.scrollToItem(item)
    rect = w.library.list.visualItemRect(item)
    viewport = w.library.list.viewport()
    # what a real double-click delivers: press and release, then the double-click event
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    assert w.session.handle is None or w.session.handle.name != "toy-click"  # one click only selects
    QTest.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())

    async def loaded():
        deadline = time.monotonic() + 30
        while w.session.handle is None or w.session.handle.name != "toy-click":
            assert time.monotonic() < deadline, "double-click did not load the model"
            await asyncio.sleep(0.02)

    run(loaded())
    marked = w.library.loaded_item()
    assert marked is not None and marked.data(PATH_ROLE) == path
    assert marked.text().startswith(LOADED_MARK) and marked.font().bold()
    others = [w.library.list.item(j) for j in range(w.library.list.count()) if j != i]
    assert all(not o.font().bold() and not o.text().startswith(LOADED_MARK) for o in others)
    w.library.refresh()  # the mark survives re-reading the library
    assert w.library.loaded_item().data(PATH_ROLE) == path


def test_card_shows_local_times_and_the_data_as_a_table():
    created = "2026-11-27T08:08:12+00:00"
    card = {
        "created": created,
        "data": {"items": 1797, "train_items": 1500, "source": "<digits>", "fingerprint": "b97c80"},
        "training": {"wall_time_s": 1738.7, "config": {"lr": 0.002}},
    }
    page = card_html(
        "toy", {"modality": "image", "ell": 2, "height": 8, "width": 8, "channels": 1}, card, True
    )
    local = dt.datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    assert local in page and created not in page
    assert local_time("2026-11-27T08:08:12") is None and local_time("not a date") is None
    # the data is a small table of its own: a Data heading, one row per field, no key:value dump
    assert "<b>Data</b></p><table" in page
    assert ">items</td><td>&nbsp;1,797<" in page and ">train items</td><td>&nbsp;1,500<" in page
    assert "&lt;digits&gt;" in page and "<digits>" not in page  # still escaped
    assert "b97c80" not in page and "items: 1797" not in page
    assert "29 min" in page and "0.002" not in page  # wall time readable; nested config left out


# ---------------------------------------------------------------------------- charts
def test_one_validation_point_is_a_point_inside_a_sensible_axis(qtbot):
    (x0, x1), (y0, y1) = step_range([200.0], 201), axis_range([3.42])
    assert x0 == 0 and x1 == 201  # from step 0, not "200 ... step 201"
    assert y0 < 3.42 < y1 and (y1 - y0) < 1  # padded around the value, not a collapsed range
    ticks = nice_ticks(x0, x1, 4)
    assert ticks[0] == 0 and all(t % 50 == 0 for t in ticks)
    assert all(round(t, 6) == round(t, 1) for t in nice_ticks(y0, y1, 4))
    chart = LineChart("Validation bound", "bits/dim", dots=True)
    qtbot.addWidget(chart)
    chart.resize(320, 200)
    chart.x_max = 201
    chart.add(200, 3.42)
    image = QImage(chart.size(), QImage.Format.Format_RGB32)
    chart.render(image)
    (cx0, cx1), (cy0, cy1) = chart.ranges()
    assert (cx0, cx1) == (0.0, 201.0) and cy0 < 3.42 < cy1
    dot = image.pixelColor(int(chart.width() * 0.9), 0)  # something was painted without errors
    assert dot.isValid()
    assert chart.minimumHeight() >= 150 and chart.sizeHint().height() >= 200


# ---------------------------------------------------------------------------- estimate
def test_estimate_counts_what_the_probe_leaves_out_and_matches_a_real_run(tmp_path):
    cfg = image_config()
    tcfg = engine.TrainConfig(steps=120, batch_size=4, eval_every=30, preview_every=30, checkpoint_every=30)
    speed = runs.probe_speed(cfg, tcfg.batch_size)
    assert speed.ok and 0 < speed.forward_s < speed.step_s and 0 < speed.preview_s
    params = runs.num_parameters(cfg)
    est = runs.run_estimate(speed, tcfg, params, val_items=12)
    steps_only = tcfg.steps * speed.step_s
    assert est.total_s > steps_only + runs.START_S  # evaluations, previews, checkpoints, start-up
    assert set(est.parts) == {
        "120 steps", "3 validations", "4 sample previews", "3 checkpoints", "final validation",
        "start-up and saving",
    }  # fmt: skip
    assert est.text().startswith("\u2248 ")
    assert math.isclose(est.total_s, sum(est.parts.values()))
    # a real run of those settings: the estimate is within a factor 2.5 either way of its time
    import numpy as np
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray((rng.integers(0, 2, (4, 4)) * 255).astype(np.uint8), mode="L").save(
            folder / f"{i}.png"
        )
    data = engine.preflight(str(folder), cfg, tcfg.data_options(), preview=0)
    est = runs.run_estimate(speed, tcfg, params, data.val_items)
    t0 = time.perf_counter()
    for _ in engine.iter_train(cfg, tcfg, data, str(tmp_path / "out.safetensors")):
        pass
    took = time.perf_counter() - t0
    # the engine's part (no studio queueing, no library import): within a factor 3 either way
    work = est.total_s - est.parts["start-up and saving"]
    print(f"estimate without start-up {work:.2f} s, engine run {took:.2f} s")
    assert work / 3 < took < work * 3 + 0.5, (est.text(), took)
    # and more work gives a longer estimate, nothing shown for a skipped probe
    longer = runs.run_estimate(speed, engine.TrainConfig(steps=400, batch_size=4), params, 12)
    assert longer.total_s > est.total_s
    assert not runs.SKIPPED.ok


def test_engine_messages_name_studio_actions_not_flags():
    said = runs.studio_words("cancelled at step 12; resume with --resume from /tmp/x.ckpt.safetensors")
    assert "--" not in said and "Resume" in said
    said = runs.studio_words(
        "lower the learning rate (--lr) from 0.001, then --resume from the last checkpoint"
    )
    assert "--" not in said and "Learning rate" in said and "Resume" in said
    assert runs.studio_words("give --steps 40 or more") == "set Steps to 40 or more"
