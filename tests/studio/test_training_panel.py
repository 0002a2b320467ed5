"""The Train tab: pre-flight report, a short run, stop-and-save, resume after a crash, sharing the engine.

Tiny real models (d_model 16, one layer) on 4x4 grey images made in the test.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from conftest import answer_dialog, image_config, text_config, tiny_model
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QCloseEvent, QDropEvent
from PySide6.QtWidgets import QApplication

import engine
from studio.train import runs as training_runs
from studio.train.runs import Preset
from studio.train.selftest import until


@pytest.fixture(autouse=True)
def tiny_preset(monkeypatch):
    """The "tiny" size preset shrunk to the test model's backbone."""
    monkeypatch.setitem(training_runs.PRESETS, "tiny", Preset("tiny", 16, 1, 2, 20, 4, 3e-3, 0.9, 10))


def make_folder(folder, count=12, corrupt=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        img = (rng.integers(0, 2, (4, 4)) * 255).astype(np.uint8)
        Image.fromarray(img, mode="L").save(folder / f"img{i:02d}.png")
    if corrupt:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all")
    return folder


def panel_for(window, steps=20, name="tiny-run", every=10):
    panel = window.extra_panels["Train"]
    window.tabs.setCurrentWidget(panel)
    f = panel.form
    f.new.setChecked(True)
    f.apply_preset("tiny")
    f.set_values({"modality": "image", "height_": 4, "width_": 4, "channels": 1, "levels": 16, "ell": 2})
    f.set_values({"name": name, "steps": steps, "batch": 4})
    f.set_values({"checkpoint_every": every, "preview_every": every, "eval_every": every})
    assert f.model_config() == image_config()
    return panel


async def finished(panel, timeout=60):
    await until(lambda: panel.state == "idle" and panel.job is None, timeout, "the run to end")


# Each run is driven inside one coroutine: the panel's job-following task then only ever steps
# while the qasync loop runs (between run() calls qasync processes Qt events with no running loop).


def test_report_lists_the_corrupt_file_and_blocks_empty_data(make_window, run, tmp_path):
    w = make_window()
    panel = panel_for(w)
    empty = tmp_path / "empty"
    empty.mkdir()
    report = run(panel.check_data(str(empty)))
    assert not report.ok
    assert not panel.view.start.isEnabled()
    assert "No usable data" in panel.view.reason.text() and panel.view.reason.isVisible()

    report = run(panel.check_data(str(tmp_path / "nowhere")))
    assert report is None and not panel.view.start.isEnabled()
    assert (
        "Cannot read the data" in panel.form.report_summary.text() and "nowhere" in panel.view.reason.text()
    )

    report = run(panel.check_data(str(make_folder(tmp_path / "data"))))
    assert (report.files_found, report.files_used, len(report.skipped)) == (13, 12, 1)
    assert report.skipped[0].path == "broken.png"
    listed = [panel.form.skipped.item(i).text() for i in range(panel.form.skipped.count())]
    assert len(listed) == 1 and listed[0].startswith("broken.png \u2014 ")
    assert "13 files found, 12 used, 1 skipped" in panel.form.report_summary.text()
    n = len(report.preview_tokens)  # every training item (fewer than 16), 4x4 each, 1 px gaps
    assert n == report.train_items and 8 <= n <= 12
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    preview = panel.view.preview_image.image
    assert (preview.width(), preview.height()) == (cols * 5 + 1, rows * 5 + 1)
    assert panel.view.start.isEnabled() and not panel.view.reason.isVisible()

    mime = QMimeData()  # dropping a folder on the tab makes it the data and checks it
    mime.setUrls([QUrl.fromLocalFile(str(empty))])
    drop = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    panel.dropEvent(drop)
    assert panel.form.data_path.text() == str(empty) and not panel.view.start.isEnabled()
    run(until(lambda: panel.report is not None and not panel.report.ok, 10, "the dropped folder's report"))


def test_a_20_step_run_charts_checkpoints_and_lands_in_the_library(make_window, run, tmp_path):
    w = make_window()
    panel = panel_for(w, steps=20)
    data = make_folder(tmp_path / "data")

    async def scenario():
        await panel.check_data(str(data))
        assert panel.start() is not None
        await finished(panel)

    run(scenario(), 90)
    record = panel.record
    assert record.status == "done", record.message
    assert [x for x, _ in panel.view.loss_chart.points] == list(range(1, 21))
    assert len(panel.view.lr_chart.points) == 20 and panel.view.bpd_chart.points
    assert panel.view.checkpoints.count() == 2 and record.checkpoint_path.exists()
    assert "tiny-run" in {e.name for e in engine.list_models()}
    assert w.library.list.currentItem().text().startswith("tiny-run")  # selected in the library
    assert panel.form.name.text() == "tiny-run-2"  # the next run gets a free name
    assert training_runs.unfinished_runs() == []


def test_stop_saves_a_model_that_generates(make_window, run, tmp_path):
    w = make_window()
    panel = panel_for(w, steps=5000, every=0)
    data = make_folder(tmp_path / "data")

    async def scenario():
        await panel.check_data(str(data))
        panel.start()
        await until(lambda: len(panel.view.loss_chart.points) >= 3, 30, "three steps")
        panel.pause()
        await until(lambda: panel.state == "paused", 30, "the pause")
        paused_at = panel.view.loss_chart.points[-1][0]
        assert panel.record.status == "paused" and panel.view.resume.isEnabled()
        assert training_runs.checkpoint_step(panel.record.checkpoint_path) == paused_at
        assert panel.resume() is not None
        await until(lambda: len(panel.view.loss_chart.points) >= paused_at + 2, 30, "steps after resuming")
        panel.stop()
        await finished(panel)

    run(scenario(), 90)
    steps = [x for x, _ in panel.view.loss_chart.points]
    assert steps == list(range(1, len(steps) + 1))  # resumed at the paused step, nothing repeated
    assert panel.record.status == "stopped"
    entry = next(e for e in engine.list_models() if e.name == "tiny-run")
    card = entry.info.card
    assert card["training"]["stopped_early"] and card["training"]["steps"] >= 3
    assert card["metrics"]["valid_bound"]["bits_per_dim"] > 0
    assert panel.view.open_model.isVisibleTo(panel)
    handle = run(panel.generate_with_saved())  # "Generate with it": loaded, Generate tab shown
    assert w.session.handle is handle and w.tabs.currentIndex() == 0
    result = run(w.bridge.generate(handle, engine.SampleRequest(num_samples=2, steps=4, seed=1)))
    assert result.tokens.shape == (2, 16) and bool((result.tokens >= 0).all())


def crashed_run(data):
    """A run record still marked "running" whose process died after its step-10 checkpoint."""
    tcfg = engine.TrainConfig(
        steps=20, batch_size=4, lr=3e-3, warmup=2, ema=0.9, checkpoint_every=5, eval_every=0, preview_every=0
    )
    tcfg = tcfg.replace(eval_batches=4)
    record = training_runs.new_run(
        "crashed", str(data), {"kind": "new", "config": image_config().to_dict()}, tcfg
    )
    record.save(status="running")
    gen = engine.iter_train(image_config(), tcfg, str(data), record.out)
    for ev in gen:  # the "crash": the process stops after the step-10 checkpoint
        if ev.kind == "checkpoint" and ev.step == 10:
            gen.close()
            break
    assert training_runs.checkpoint_step(record.checkpoint_path) == 10
    return record


def test_an_interrupted_run_is_offered_and_resumes_from_its_step(make_window, run, tmp_path):
    record = crashed_run(make_folder(tmp_path / "data"))
    w = make_window()
    panel = w.extra_panels["Train"]
    assert [r.id for r in panel.pending] == [record.id]
    assert panel.view.banner.isVisibleTo(panel) and "step 10 of 20" in panel.view.banner_text.text()

    async def scenario():
        assert panel.resume_unfinished() is not None
        await finished(panel)

    run(scenario(), 90)
    assert panel.record.status == "done", panel.record.message
    assert [x for x, _ in panel.view.loss_chart.points] == list(range(11, 21))
    assert "crashed" in {e.name for e in engine.list_models()}
    assert training_runs.unfinished_runs() == []


def test_generation_runs_between_training_steps(make_window, run, tmp_path):
    w = make_window()
    handle = run(w.bridge.load(tiny_model(image_config())))
    panel = panel_for(w, steps=5000, every=0)
    data = make_folder(tmp_path / "data")

    async def scenario():
        await panel.check_data(str(data))
        panel.start()
        await until(lambda: len(panel.view.loss_chart.points) >= 2, 30, "two steps")
        result = await w.bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=4, seed=3))
        assert result.tokens.shape == (1, 16) and not result.cancelled
        log = [panel.view.log.item(i).text() for i in range(panel.view.log.count())]
        assert any("so that queued jobs can run" in line for line in log), log
        seen = len(panel.view.loss_chart.points)
        await until(lambda: len(panel.view.loss_chart.points) > seen + 1, 30, "training to continue")
        panel.stop()
        await finished(panel)
        return result

    result = run(scenario(), 120)
    steps = [x for x, _ in panel.view.loss_chart.points]
    assert steps == list(range(1, len(steps) + 1))  # continued from the same step, nothing repeated
    assert panel.record.status == "stopped"
    assert torch.is_tensor(result.tokens)


def select_model(window, name):
    from studio.library import NAME_ROLE

    window.library.refresh()
    items = [window.library.list.item(i) for i in range(window.library.list.count())]
    window.library.list.setCurrentItem(next(it for it in items if it.data(NAME_ROLE) == name))


def test_fine_tune_the_selected_model_and_refuse_data_that_cannot_fit(make_window, run, tmp_path):
    engine.save_model(engine.user_models_dir() / "parent.safetensors", tiny_model(image_config()))
    engine.save_model(engine.user_models_dir() / "texty.safetensors", tiny_model(text_config(seq_len=16)))
    data = make_folder(tmp_path / "data", corrupt=False)
    w = make_window()
    panel = panel_for(w, steps=4, name="child", every=0)
    parent_file = (engine.user_models_dir() / "parent.safetensors").read_bytes()

    async def scenario():
        select_model(w, "texty")  # a text model cannot train on images
        panel.form.finetune.setChecked(True)  # brings fine-tuning defaults: set the short run again
        panel.form.set_values({"steps": 4, "batch": 4})
        report = await panel.check_data(str(data))
        assert not report.ok and not panel.view.start.isEnabled()
        assert "No usable data" in panel.view.reason.text()
        select_model(w, "parent")
        assert panel.form.is_finetune() and panel.form.model_source()["name"] == "parent"
        await panel.check_data(str(data))
        assert panel.start() is not None
        await finished(panel)

    run(scenario(), 90)
    assert panel.record.status == "done", panel.record.message
    child = next(e for e in engine.list_models() if e.name == "child")
    assert child.info.card["parent"]["name"] == "parent"
    assert (engine.user_models_dir() / "parent.safetensors").read_bytes() == parent_file  # untouched


def test_text_data_preview_is_decoded_text(make_window, run, tmp_path):
    (tmp_path / "a.txt").write_text("hello prime studio, a small text to train on.\n" * 3)
    w = make_window()
    panel = w.extra_panels["Train"]
    f = panel.form
    f.new.setChecked(True)
    f.set_values({"modality": "text", "seq_len": 16, "ell": 2})
    report = run(panel.check_data(str(tmp_path / "a.txt")))
    assert report.ok and report.items >= 2
    assert panel.view.preview_stack.currentWidget() is panel.view.preview_text
    assert "hello prime" in panel.view.preview_text.toPlainText()
    assert panel.form.text_mode.isVisibleTo(panel) and not panel.form.fit.isVisibleTo(panel)
    f.set_values({"text_mode": "pack"})
    assert panel.form.train_config().text_mode == "pack" and panel.start_blocker() is not None  # re-check


def test_a_resume_that_cannot_work_is_explained_and_can_be_discarded(make_window, run, tmp_path):
    data = make_folder(tmp_path / "data")
    record = crashed_run(data)
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(data / "new.png")  # the data changed
    w = make_window()
    panel = w.extra_panels["Train"]

    async def scenario():
        assert panel.resume_unfinished() is not None
        await finished(panel)

    run(scenario(), 60)
    assert "different data" in panel.view.status.text()
    assert [r.id for r in panel.pending] == [record.id] and panel.view.banner.isVisibleTo(panel)
    assert training_runs.checkpoint_step(record.checkpoint_path) == 10  # the checkpoint is intact
    assert "crashed" not in {e.name for e in engine.list_models()}
    panel.discard_unfinished()
    assert training_runs.unfinished_runs() == [] and panel.view.banner.isHidden()


@pytest.fixture
def closing_keeps_the_loop(qapp):
    """Closing a test's window must not quit the shared application (and the test's event loop)."""
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)


def test_closing_the_window_pauses_the_run_for_the_next_start(
    make_window, run, tmp_path, closing_keeps_the_loop
):
    w = make_window()
    panel = panel_for(w, steps=5000, every=0)
    data = make_folder(tmp_path / "data")

    async def scenario():
        await panel.check_data(str(data))
        panel.start()
        await until(lambda: len(panel.view.loss_chart.points) >= 2, 30, "two steps")
        # what closing the window does (without quitting the test's event loop): the window asks
        # first, then pauses the run with a checkpoint and closes; the panel sees the Close event
        answer_dialog("Checkpoint and quit")
        QTimer.singleShot(0, lambda: QApplication.sendEvent(w, QCloseEvent()))
        await until(lambda: not w.isVisible() and not w.bridge.busy, 60, "the window to close")

    run(scenario(), 90)
    (record,) = training_runs.unfinished_runs()
    assert record.status == "paused" and training_runs.checkpoint_step(record.checkpoint_path) >= 2
    assert "tiny-run" not in {e.name for e in engine.list_models()}  # paused, not saved


def test_quitting_during_training_asks_first_and_checkpoints_the_run(
    make_window, run, tmp_path, closing_keeps_the_loop
):
    w = make_window()
    panel = panel_for(w, steps=5000, every=0)
    data = make_folder(tmp_path / "data")

    async def scenario():
        await panel.check_data(str(data))
        panel.start()
        await until(lambda: len(panel.view.loss_chart.points) >= 2, 30, "two steps")
        keep = answer_dialog("Keep training")
        QTimer.singleShot(0, w.close)  # File > Quit, or the window's close button
        await until(lambda: keep, 20, "the question")
        assert "training run is in progress" in keep[0]
        seen = len(panel.view.loss_chart.points)
        await until(lambda: len(panel.view.loss_chart.points) > seen + 1, 30, "training to go on")
        assert w.isVisible() and panel.state == "running"
        assert training_runs.unfinished_runs()[0].status == "running"
        quit_ = answer_dialog("Checkpoint and quit")
        QTimer.singleShot(0, w.close)
        await until(lambda: quit_ and not w.isVisible(), 60, "the window to close after the checkpoint")
        await until(lambda: not w.bridge.busy, 30, "the engine to stop")
        return seen

    seen = run(scenario(), 150)
    (record,) = training_runs.unfinished_runs()
    assert record.status == "paused"
    assert training_runs.checkpoint_step(record.checkpoint_path) >= seen + 2  # written at the quit
    assert "tiny-run" not in {e.name for e in engine.list_models()}
    again = make_window()
    offered = again.extra_panels["Train"]
    assert [r.id for r in offered.pending] == [record.id] and not offered.view.banner.isHidden()


def test_stop_while_queued_drops_the_job(make_window, run, tmp_path):
    w = make_window()
    panel = panel_for(w, steps=5000, every=0)
    data = make_folder(tmp_path / "data")

    def busy(token):  # the engine is busy with something else
        for _ in range(200):
            if token.cancelled:
                return None
            time.sleep(0.01)

    async def scenario():
        await panel.check_data(str(data))
        blocker = w.bridge.submit("probe", "busy", busy)
        panel.start()
        await until(lambda: panel.job is not None and panel.job.status == "queued", 10, "the queued job")
        assert "Queued" in panel.view.status.text()
        panel.stop()
        await finished(panel)
        blocker.cancel()
        await until(lambda: not w.bridge.busy, 10, "the engine to be idle")

    run(scenario(), 60)
    assert panel.record.status == "stopped" and not panel.view.loss_chart.points
    assert training_runs.unfinished_runs() == []
    assert "tiny-run" not in {e.name for e in engine.list_models()}


def test_settings_survive_a_restart(make_window, settings_path):
    w = make_window()
    panel = panel_for(w, steps=123, name="kept")
    panel.form.set_values({"objective": "surrogate", "lr": 0.0042, "data_path": "/some/folder"})
    w.close()
    w2 = make_window(settings_path)
    values = w2.extra_panels["Train"].form.values()
    assert (values["steps"], values["name"], values["objective"]) == (123, "kept", "surrogate")
    assert (values["height_"], values["levels"], values["lr"], values["data_path"]) == (
        4,
        16,
        0.0042,
        "/some/folder",
    )


def icon_folder(folder, count=20, solid=2):
    """RGBA icons: black squares on transparency (as in Adwaita's symbolic set); ``solid`` opaque noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        arr = np.zeros((8, 8, 4), np.uint8)
        if i < solid:
            arr[...] = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
            arr[..., 3] = 255
        else:
            arr[2:6, 2:6, 3] = 255
        Image.fromarray(arr, mode="RGBA").save(folder / f"icon{i:02d}.png")
    return folder


def test_transparent_icons_warn_offer_to_drop_and_show_16_previews(make_window, run, tmp_path):
    w = make_window()
    panel = panel_for(w)
    f = panel.form
    data = icon_folder(tmp_path / "icons")
    assert f.background.isVisibleTo(panel) and not f.column.isVisibleTo(panel)
    f.set_values({"background": "black"})
    report = run(panel.check_data(str(data)))
    assert report.ok and report.flat_items == 18
    summary = f.report_summary.text()
    assert summary.index("Warning:") < summary.index("20 files found")  # warnings first
    assert "18 of 20 items (90%) are one flat colour" in summary
    assert f.drop_flat_now.isVisibleTo(panel) and f.drop_flat_now.text() == "Drop the 18 flat items"
    listed = [f.skipped.item(i).text() for i in range(f.skipped.count())]
    assert sum("flat (kept" in t for t in listed) == 18
    assert "<table>" in f.stats.text() and "{" not in f.stats.text()
    assert "16 preview items exactly as the model will see them" in panel.view.preview_title.text()
    preview = panel.view.preview_image.image  # 16 items of 4x4 in a 4x4 grid, 1 px gaps
    assert (preview.width(), preview.height()) == (21, 21)
    f.drop_flat_now.click()
    assert f.drop_flat.isChecked() and f.train_config().drop_flat
    report = run(panel.check_data())
    assert report.ok and report.items == 2 and report.skipped_by_reason == {"flat": 18}
    assert not f.drop_flat_now.isVisibleTo(panel)
    f.set_values({"drop_flat": False, "background": "white"})
    report = run(panel.check_data())
    assert report.ok and report.flat_items == 0 and "Warning" not in f.report_summary.text()
    f.set_values({"background": "colour", "background_colour": "#12"})
    assert f.background_colour.isEnabled()
    assert run(panel.check_data()) is None
    assert "#rrggbb" in f.report_summary.text() and not panel.view.start.isEnabled()


def test_text_by_content_with_patterns_and_a_column(make_window, run, tmp_path):
    (tmp_path / "README").write_text("read me: a file with no extension at all.\n")
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    (tmp_path / "rows.csv").write_text('id,text\n1,"<b>not bold</b> first row"\n2,second row\n')
    (tmp_path / "skip.txt").write_text("left out by the exclude pattern\n")
    w = make_window()
    panel = w.extra_panels["Train"]
    f = panel.form
    f.new.setChecked(True)
    f.set_values({"modality": "text", "seq_len": 32, "ell": 2})
    f.set_values({"column": "text", "exclude": "skip*, *.bak"})
    assert f.column.isVisibleTo(panel) and not f.background.isVisibleTo(panel)
    report = run(panel.check_data(str(tmp_path)))
    assert report.ok and report.excluded == 1
    assert report.data.sources == ("README", "rows.csv")
    listed = [f.skipped.item(i).text() for i in range(f.skipped.count())]
    assert listed == ["blob \u2014 binary (holds NUL bytes)"]
    shown = panel.view.preview_text.toPlainText()
    assert "\u2500\u2500 1 \u00b7 README \u2500\u2500\nread me: a file" in shown
    assert "\u23ce\u00d723 (padding)" in shown  # README's 41 bytes fill 2 x 32 tokens
    rows = [bytes(r).rstrip(b"\n") for r in report.data.tokens]
    assert b"<b>not bold</b> first row" in rows and b"second row" in rows  # the column, row by row
    f.set_values({"column": "body"})
    report = run(panel.check_data())
    assert report.ok and report.skipped_by_reason == {"binary": 1, "no such column": 1}


def test_data_options_survive_a_restart(make_window, settings_path):
    w = make_window()
    f = w.extra_panels["Train"].form
    f.set_values({"background": "colour", "background_colour": "#204060", "include": "*.png"})
    f.set_values({"exclude": "draft*", "column": "text", "drop_flat": True})
    w.close()
    f2 = make_window(settings_path).extra_panels["Train"].form
    cfg = f2.train_config()
    assert (cfg.background, cfg.include, cfg.exclude, cfg.column, cfg.drop_flat) == (
        "#204060",
        ("*.png",),
        ("draft*",),
        "text",
        True,
    )


def test_shift_augmentation_and_weight_decay_reach_the_trained_model(make_window, run, tmp_path):
    engine.save_model(engine.user_models_dir() / "plain.safetensors", tiny_model(image_config()))
    w = make_window()
    panel = panel_for(w, steps=6, name="shifted", every=0)
    f = panel.form
    f.set_values({"augment": 0.5, "weight_decay": 0.1})
    assert f.model_config().augment_shift == 1  # a new model is told the shift
    assert (f.train_config().augment_p, f.train_config().weight_decay) == (0.5, 0.1)
    data = make_folder(tmp_path / "data", corrupt=False)

    async def scenario():
        await panel.check_data(str(data))
        assert panel.start() is not None
        await finished(panel)

    run(scenario(), 90)
    assert panel.record.status == "done", panel.record.message
    entry = next(e for e in engine.list_models() if e.name == "shifted")
    assert entry.info.config.augment_shift == 1
    trained = entry.info.card["training"]["config"]
    assert (trained["augment_p"], trained["weight_decay"]) == (0.5, 0.1)

    # fine-tuning a model that was not built to be told a shift: the control is off, the run plain
    select_model(w, "plain")
    f.finetune.setChecked(True)
    assert not f.augment.isEnabled() and "cannot augment" in f.augment.toolTip()
    assert f.train_config().augment_p == 0.0
    select_model(w, "shifted")  # a parent that takes the shift input can be fine-tuned with it
    assert f.augment.isEnabled() and f.train_config().augment_p == 0.5
    # text models have no shift at all
    f.new.setChecked(True)
    f.set_values({"modality": "text"})
    assert not f.augment.isVisibleTo(f) and f.train_config().augment_p == 0.0
    assert f.model_config().augment_shift == 0
