"""Every output reopens fully in a later session; bad history files and a full disk lose nothing."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import subprocess

import numpy as np
import pytest
import torch
from conftest import image_config, text_config, tiny_model

import engine
from studio import render
from studio.history import store
from studio.workspace.outputs import is_loaded


def model_file(tmp_path, config=None, seed=0, name="tiny"):
    model = tiny_model(config or image_config(), seed)
    return engine.save_model(tmp_path / f"{name}.safetensors", model, {"steps": 3}), model


def generate(run, window, **values):
    window.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 7, "num_samples": 2, "steps": 12, **values}
    )
    return run(window.session.generate())


def saved_items(window):
    group = window.history_panel.tree.topLevelItem(0)
    assert group.text(0).startswith("Earlier sessions")
    return [group.child(i) for i in range(group.childCount())]


def select(item):
    item.treeWidget().clearSelection()
    item.setSelected(True)


def wait_until(run, condition, timeout=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    run(poll(), timeout=timeout)


def canvas(window):
    return render.qimage_to_array(window.canvas.view.image())


def views_at_every_step(window, steps):
    out = []
    for mode in ("state", "prediction", "map"):
        window.canvas.set_mode(mode)
        for k in range(steps + 1):
            window.timeline.seek(k)
            out.append(canvas(window))
    window.canvas.set_mode("state")
    return out


def test_an_output_reopens_in_a_new_window_equal_at_every_step_and_branches(
    run, make_window, settings_path, tmp_path
):
    path, model = model_file(tmp_path)
    w = make_window()
    run(w.session.load_model(str(path)))
    entry = generate(run, w, steps=12, corrector=0.1, reveal="marginal")
    assert entry.trajectory.events, "the corrector should have changed some digits"
    original = views_at_every_step(w, entry.steps_done)
    chart = list(w.timeline.chart.revealed)
    w.close()

    w2 = make_window(settings_path)  # the app closed and opened again
    (item,) = saved_items(w2)
    assert item.text(0) == entry.output and "every step recorded" in item.toolTip(0)
    select(item)
    reopened = w2.session.entry
    assert reopened is not None and reopened.reopened and reopened.output == entry.output
    wait_until(run, lambda: is_loaded(reopened.model))  # its model file is loaded for hover/branch
    assert reopened.model.path == str(path)
    for k in range(entry.steps_done + 1):
        assert torch.equal(reopened.trajectory.state_at(k), entry.trajectory.state_at(k)), k
    again = views_at_every_step(w2, reopened.steps_done)
    assert len(again) == 3 * 13 and all(np.array_equal(a, b) for a, b in zip(again, original, strict=True))
    assert list(w2.timeline.chart.revealed) == chart
    assert w2.timeline.slider.maximum() == 12
    assert reopened.result.nfe == entry.result.nfe and reopened.result.idle_steps == entry.result.idle_steps
    w2.timeline.seek(4)
    w2.session.hover_pixel(0, 1, 2)
    assert "digits [" in w2.canvas.hover.text()
    wait_until(run, lambda: "%" in w2.canvas.hover.text())  # the model's probabilities, as for a fresh one
    w2.session.hover_pixel(-1, -1, -1)  # pointer off the canvas: no more probability requests

    child = run(w2.session.branch(5, seed=123))
    assert child.parent == reopened.id and child.settings["parent_output"] == entry.output
    expected = engine.branch(
        model, entry.trajectory, 5, entry.result.request.replace(seed=123, record_predictions=True)
    )
    for k in range(child.steps_done + 1):
        assert torch.equal(child.trajectory.state_at(k), expected.trajectory.state_at(k)), k
    assert w2.history_panel.items[child.id].parent() is w2.history_panel.items[reopened.id]
    w2.compare_entries(reopened.id, child.id)
    gif = w2.session.export_entry(reopened.id, "gif", str(tmp_path / "again.gif"))
    assert gif is not None and gif.stat().st_size > 0
    assert not w2.errors, w2.errors


def test_a_reopened_text_output_shows_its_text_and_branches(run, make_window, settings_path, tmp_path):
    path, _ = model_file(tmp_path, text_config(), name="words")
    w = make_window()
    run(w.session.load_model(str(path)))
    entry = generate(run, w, steps=8, prefix="Hi")
    shown = w.text.view.toPlainText()
    w.close()
    w2 = make_window(settings_path)
    select(saved_items(w2)[0])
    reopened = w2.session.entry
    assert w2.view_stack.currentWidget() is w2.text and w2.text.view.toPlainText() == shown
    assert w2.session.entry_texts(reopened) == w.session.entry_texts(entry)
    wait_until(run, lambda: is_loaded(reopened.model))
    child = run(w2.session.branch(3, seed=9))
    assert torch.equal(child.trajectory.state_at(3), entry.trajectory.state_at(3))
    assert not w2.errors


def test_an_old_output_without_steps_restores_settings_and_says_so(run, make_window, settings_path, tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    old = folder / "20250101-120000-000000-0001-generate.png"  # what the studio wrote before
    settings = {"seed": 4321, "temperature": 0.9, "steps": 20, "model": "tiny"}
    store.save_png(old, np.zeros((4, 4, 3), np.uint8), settings)
    store.sidecar(old, settings)
    w = make_window(settings_path)
    (item,) = saved_items(w)
    assert "no recorded steps" in item.toolTip(0)
    w.generate_panel.set_values({"seed": 1, "temperature": 1.0})
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    select(item)
    got = w.generate_panel.values()
    assert (got["seed"], got["temperature"], got["seed_mode"]) == (4321, 0.9, "fixed")
    assert any("no recorded steps" in m for m in messages), messages
    assert len(w.history) == 0 and not w.errors


def test_truncated_and_foreign_trajectory_files_are_refused_and_the_rest_is_intact(
    run, make_window, settings_path, tmp_path
):
    path, _ = model_file(tmp_path)
    w = make_window()
    run(w.session.load_model(str(path)))
    entries = [generate(run, w, seed=s) for s in (1, 2, 3)]
    w.close()
    truncated, foreign, good = (store.SavedOutput(e.files[0]) for e in entries)
    data = truncated.trajectory.read_bytes()
    truncated.trajectory.write_bytes(data[: len(data) // 2])
    foreign.trajectory.write_bytes(path.read_bytes())  # a model file where the steps should be
    before = {p: p.read_bytes() for p in (tmp_path / "outputs").iterdir()}

    w2 = make_window(settings_path)
    items = {item.text(0): item for item in saved_items(w2)}
    assert len(items) == 3
    select(items[truncated.name])
    assert "truncated" in str(w2.errors[-1]) and truncated.name in str(w2.errors[-1])
    select(items[foreign.name])
    assert "not a Prime Studio trajectory" in str(w2.errors[-1])
    assert len(w2.errors) == 2 and len(w2.history) == 0
    select(items[good.name])
    assert w2.session.entry is not None and w2.session.entry.output == good.name
    assert torch.equal(w2.session.entry.trajectory.state_at(12), entries[2].trajectory.state_at(12))
    wait_until(run, lambda: is_loaded(w2.session.entry.model))
    assert {p: p.read_bytes() for p in (tmp_path / "outputs").iterdir()} == before  # nothing rewritten
    assert len(w2.errors) == 2


def test_an_output_whose_model_is_gone_is_viewed_not_branched(run, make_window, settings_path, tmp_path):
    path, _ = model_file(tmp_path, name="gone")
    w = make_window()
    run(w.session.load_model(str(path)))
    entry = generate(run, w)
    original = views_at_every_step(w, entry.steps_done)
    w.close()
    path.unlink()  # the model was deleted since
    w2 = make_window(settings_path)
    messages = []
    w2.statusBar().messageChanged.connect(messages.append)
    select(saved_items(w2)[0])
    reopened = w2.session.entry
    wait_until(run, lambda: any("no longer exists" in m for m in messages))
    assert not is_loaded(reopened.model)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(views_at_every_step(w2, reopened.steps_done), original, strict=True)
    )
    with pytest.raises(ValueError, match="no longer exists"):
        run(w2.session.branch(3, seed=1))
    png = w2.session.export_entry(reopened.id, "png", str(tmp_path / "still.png"))
    assert png is not None
    w2.session.restore_png(str(entry.files[0]))  # the PNG names a model that no longer exists
    assert any("not in the library any more" in m for m in messages)
    assert not w2.errors


# --------------------------------------------------------------------------- full disk


def _tmpfs(folder, size="64k") -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, check=False
    )
    return done.returncode == 0


def _fill(folder, leave: int) -> None:
    """Fill the file system of ``folder`` until ``leave`` bytes are free."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler.bin", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("how", ["tmpfs", "injected"])
def test_a_full_disk_while_saving_leaves_nothing_half_written(
    run, bridge, qtbot, settings_path, tmp_path, monkeypatch, how
):
    from studio.mainwindow import MainWindow
    from studio.settings import Settings

    folder = tmp_path / "small-disk"
    mounted = how == "tmpfs" and _tmpfs(folder)
    if how == "tmpfs" and not mounted:
        pytest.skip("mounting a small tmpfs needs root (the injected variant covers the logic)")
    windows = []
    try:
        path, _ = model_file(tmp_path)

        def open_window():
            win = MainWindow(bridge, Settings(settings_path), outputs_dir=folder)
            qtbot.addWidget(win)
            win.show()
            windows.append(win)
            return win

        w = open_window()
        run(w.session.load_model(str(path)))
        first = generate(run, w, seed=1)
        assert len(first.files) == 3
        kept = {p.name: p.read_bytes() for p in first.files}
        if mounted:
            _fill(folder, leave=4096)  # room for the trajectory file, not for the PNG after it
        else:
            from engine.files import atomic

            calls = []
            real_fsync = os.fsync

            def fsync(fd):
                if stat.S_ISREG(os.fstat(fd).st_mode):  # files, not the folder fsyncs
                    calls.append(fd)
                if len(calls) == 2:  # the trajectory got through; the PNG does not
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_fsync(fd)

            monkeypatch.setattr(atomic.os, "fsync", fsync)
        second = generate(run, w, seed=2)
        monkeypatch.undo()
        assert second is not None and second.files == [] and second.output is None
        message = str(w.errors[-1])
        assert " is full" in message and "Nothing of it was written" in message, message
        names = sorted(p.name for p in folder.iterdir() if p.name != "filler.bin")
        assert names == sorted(kept), names  # nothing of the second output, no temporaries
        assert {n: (folder / n).read_bytes() for n in kept} == kept
        assert len(w.history) == 2  # the unsaved output stays in this session
        if mounted:
            (folder / "filler.bin").unlink()
        w.close()
        w2 = open_window()
        (item,) = saved_items(w2)
        select(item)
        assert w2.session.entry is not None and w2.session.entry.output == first.output
        wait_until(run, lambda: is_loaded(w2.session.entry.model))
        assert json.loads((folder / f"{first.output}.png.json").read_text())["seed"] == 1
    finally:
        for win in windows:
            win.close()
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)


def test_two_outputs_of_an_earlier_session_compare_and_export_from_the_dock(
    run, make_window, settings_path, tmp_path
):
    path, _ = model_file(tmp_path)
    w = make_window()
    run(w.session.load_model(str(path)))
    a, b = generate(run, w, seed=1), generate(run, w, seed=2, steps=8)
    w.close()
    w2 = make_window(settings_path)
    items = {item.text(0): item for item in saved_items(w2)}
    w2.history_panel.tree.clearSelection()
    items[a.output].setSelected(True)
    items[b.output].setSelected(True)
    w2.history_panel.compare.click()
    assert w2.tabs.currentWidget() is w2.compare
    assert {w2.history.get(i).output for i in w2.history_panel.selected_ids()} == {a.output, b.output}
    assert f"steps {a.trajectory.steps}" in w2.compare.a.stats.text() + w2.compare.b.stats.text()
    assert "steps 8" in w2.compare.a.stats.text() + w2.compare.b.stats.text()
    exported = []
    w2.history_panel.export_requested.disconnect()
    w2.history_panel.export_requested.connect(
        lambda i, kind: exported.append(w2.session.export_entry(i, kind, str(tmp_path / f"e.{kind}")))
    )
    w2.history_panel.tree.setCurrentItem(items[a.output])
    w2.history_panel._export("gif")
    assert exported and exported[0] is not None and exported[0].suffix == ".gif"
    assert not w2.errors
