"""The Gallery tab (every sample, metadata, filter, branch, delete with undo) and exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import image_config, text_config, tiny_model
from PIL import Image

import engine
from studio import render
from studio.history import store
from studio.workspace.outputs import auto_scale


def model_file(tmp_path, name, config=None, seed=0):
    return engine.save_model(tmp_path / f"{name}.safetensors", tiny_model(config or image_config(), seed))


def generate(run, window, **values):
    window.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 7, "num_samples": 3, "steps": 10, **values}
    )
    return run(window.session.generate())


def gallery(window):
    panel = window.extra_panels["Gallery"]
    window.tabs.setCurrentWidget(panel)
    panel.refresh()
    return panel


def pixels(pixmap_or_image):
    image = pixmap_or_image.toImage() if hasattr(pixmap_or_image, "toImage") else pixmap_or_image
    return render.qimage_to_array(image)


def crisp(picture: np.ndarray, factor: int) -> np.ndarray:
    return picture.repeat(factor, axis=0).repeat(factor, axis=1)


@pytest.fixture
def outputs(run, make_window, tmp_path):
    """A window with three outputs of two models: a (3 samples), a (2 samples, text-free), b."""
    w = make_window()
    a, b = model_file(tmp_path, "alpha"), model_file(tmp_path, "beta", seed=1)
    run(w.session.load_model(str(a)))
    first = generate(run, w, seed=1)
    second = generate(run, w, seed=2, num_samples=2)
    run(w.session.load_model(str(b)))
    third = generate(run, w, seed=3)
    return w, [first, second, third]


def test_every_sample_is_a_crisp_thumbnail_with_its_metadata(outputs):
    w, (first, _, _) = outputs
    g = gallery(w)
    assert len(g.visible_outputs()) == 3
    assert g.select_output(first.files[0])
    assert g.samples.count() == 3
    finals = render.Renderer(first.model.config).image_arrays(first.trajectory.state_at(first.steps_done))
    for i in range(3):
        icon = g.samples.item(i).icon().pixmap(64, 64)
        assert np.array_equal(pixels(icon), crisp(finals[i], 16)), i  # 4x4 -> 64x64, nearest neighbour
    g.samples.setCurrentRow(1)
    assert np.array_equal(pixels(g.full.picture), finals[1])  # the full-size view of that sample
    assert g.full.factor() >= 16 and g.full.factor() == int(g.full.factor())
    text = g.meta.toPlainText()
    for needle in ("alpha", "Seed", "1", "NFE", "Idle steps", "Temperature", "Reveal", "Time", "every step"):
        assert needle in text, needle
    assert f"{sum(first.result.nfe) / 3:.1f} mean" in text


def test_a_late_corrector_is_named_in_the_metadata(outputs, run):
    w, _ = outputs
    late = generate(run, w, seed=4, corrector=0.2, corrector_start=0.5)
    g = gallery(w)
    assert g.select_output(late.files[0])
    assert "\nCorrector\n0.2 from t \u2264 0.5\n" in g.meta.toPlainText()


def test_filter_by_model(outputs):
    w, (first, second, third) = outputs
    g = gallery(w)
    g.model_filter.setCurrentText("alpha")
    assert g.visible_outputs() == [second.output, first.output]
    g.model_filter.setCurrentText("beta")
    assert g.visible_outputs() == [third.output]
    assert not g.select_output(first.files[0])  # hidden by the filter
    g.model_filter.setCurrentText("All models")
    assert len(g.visible_outputs()) == 3


def test_delete_moves_to_the_trash_and_undo_brings_it_back(outputs, tmp_path):
    w, (first, _, _) = outputs
    g = gallery(w)
    before = {p.name: p.read_bytes() for p in first.files}
    assert g.select_output(first.files[0])
    assert g.delete_selected()
    assert not any(p.exists() for p in first.files)
    assert sorted(p.name for p in (tmp_path / "outputs" / ".trash").iterdir()) == sorted(before)
    assert first.output not in g.visible_outputs() and len(g.visible_outputs()) == 2
    assert w.history_panel.items[first.id].font(0).strikeOut()
    assert g.undo_button.isEnabled()
    assert g.undo_delete()
    assert {p.name: p.read_bytes() for p in first.files} == before
    assert first.output in g.visible_outputs() and g.current_output().name == first.output
    assert not w.history_panel.items[first.id].font(0).strikeOut()
    assert not g.undo_delete()  # nothing more to undo


def test_branch_one_sample_from_the_gallery(run, outputs):
    w, (first, _, _) = outputs
    g = gallery(w)
    g.select_output(first.files[0])
    g.samples.setCurrentRow(2)
    g.branch_step.setValue(4)
    child = run(g.branch_selected(seed=11))
    assert child.parent == first.id and child.result.request.num_samples == 1
    assert child.settings["parent_sample"] == 2 and child.settings["parent_output"] == first.output
    for k in range(5):
        assert torch.equal(child.trajectory.state_at(k)[0], first.trajectory.state_at(k)[2]), k
    assert w.tabs.currentIndex() == 0
    g = gallery(w)
    g.select_output(child.files[0])
    assert f"{first.output}, sample 3 at step 4" in g.meta.toPlainText()
    assert not w.errors


def test_an_earlier_sessions_output_opens_from_the_gallery(run, outputs, make_window, settings_path):
    w, (first, _, _) = outputs
    w.close()
    w2 = make_window(settings_path)
    g = gallery(w2)
    assert len(g.visible_outputs()) == 3
    g.select_output(first.files[0])
    g.samples.setCurrentRow(0)
    g.branch_step.setValue(3)
    g.samples.setCurrentRow(1)
    child = run(g.branch_selected(seed=5))
    assert child.trajectory.num_samples == 1 and child.settings["parent_sample"] == 1
    assert torch.equal(child.trajectory.state_at(3)[0], first.trajectory.state_at(3)[1])
    assert not w2.errors


# --------------------------------------------------------------------------- export


def test_png_export_keeps_its_settings_at_a_visible_default_scale(outputs, tmp_path):
    w, (first, _, _) = outputs
    grid = render.grid(w.session.entry_images(first))
    png = w.session.export_entry(first.id, "png", str(tmp_path / "big.png"))
    factor = auto_scale(*grid.shape[:2])
    with Image.open(png) as image:
        assert max(image.size) >= 500  # not a 14 x 9 pixel stamp
        assert np.array_equal(np.asarray(image.convert("RGB")), crisp(grid, factor))
    settings = store.read_png_settings(png)
    assert settings["seed"] == 1 and settings["scale"] == factor and settings["model"] == "alpha"
    three = w.session.export_entry(first.id, "png", str(tmp_path / "x3.png"), scale=3)
    with Image.open(three) as image:
        assert image.size == (grid.shape[1] * 3, grid.shape[0] * 3)
    one = w.session.export_entry(first.id, "png", str(tmp_path / "one.png"), sample=1, scale=5)
    with Image.open(one) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), crisp(w.session.entry_images(first)[1], 5))
    assert store.read_png_settings(one)["sample"] == 1


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_animations_of_the_denoising_at_a_chosen_frame_rate(outputs, tmp_path, kind):
    if kind == "webp" and not engine.webp_animation_supported():
        pytest.skip("this Pillow cannot write animated WebP")
    w, (first, _, _) = outputs
    out = w.session.export_entry(first.id, kind, str(tmp_path / f"d.{kind}"), fps=5, scale=2)
    renderer = render.Renderer(first.model.config)
    steps = store.frame_steps(first.steps_done)
    with Image.open(out) as image:
        assert image.format == kind.upper() and image.n_frames == len(steps)
        image.seek(1)
        image.load()
        assert image.info["duration"] == 200  # 5 frames per second
        image.seek(0)
        first_frame = np.asarray(image.convert("RGB"))
        image.seek(image.n_frames - 1)
        last = np.asarray(image.convert("RGB"))
    start = crisp(render.grid(renderer.image_arrays(first.trajectory.state_at(0))), 2)
    final = crisp(render.grid(renderer.image_arrays(first.trajectory.state_at(first.steps_done))), 2)
    if kind == "webp":  # lossless: exact
        assert np.array_equal(first_frame, start) and np.array_equal(last, final)
    else:  # GIF: a palette of at most 256 colours, exact for these few colours
        assert np.array_equal(last, final)
    one = w.session.export_entry(first.id, kind, str(tmp_path / f"one.{kind}"), sample=2, fps=4, scale=1)
    with Image.open(one) as image:
        image.seek(image.n_frames - 1)
        assert np.array_equal(
            np.asarray(image.convert("RGB")), renderer.image_arrays(first.trajectory.state_at(10))[2]
        )


def test_text_export_whole_and_per_sample(run, make_window, tmp_path):
    w = make_window()
    run(w.session.load_model(str(model_file(tmp_path, "words", text_config()))))
    entry = generate(run, w, steps=6, num_samples=2, prefix="Hey")
    whole = w.session.export_entry(entry.id, "text", str(tmp_path / "all.txt"))
    assert whole.read_text(encoding="utf-8") == store.join_texts(w.session.entry_texts(entry))
    assert json.loads((tmp_path / "all.txt.json").read_text())["seed"] == 7
    one = w.session.export_entry(entry.id, "png", str(tmp_path / "one.txt"), sample=1)  # text, not PNG
    assert one.read_text(encoding="utf-8") == w.session.entry_texts(entry)[1]
    g = gallery(w)
    g.select_output(entry.files[0])
    assert g.samples.count() == 2 and g.views.currentWidget() is g.text
    g.samples.setCurrentRow(0)
    assert g.text.toPlainText() == w.session.entry_texts(entry)[0]
    assert not w.errors


def test_an_export_to_a_full_disk_is_a_clear_message(outputs, tmp_path, monkeypatch):
    import errno
    import os

    w, (first, _, _) = outputs
    target = tmp_path / "full.png"
    target.write_bytes(b"old")

    real = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert w.session.export_entry(first.id, "png", str(target)) is None
    monkeypatch.setattr(os, "fsync", real)
    assert "disk is full" in str(w.errors[-1]) and target.read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".full.png")]
    assert w.session.export_entry(first.id, "png", str(target)) == target


def test_a_damaged_trajectory_shows_in_the_metadata_and_the_rest_is_listed(outputs):
    w, (first, second, _) = outputs
    saved = store.SavedOutput(first.files[0])
    data = saved.trajectory.read_bytes()
    saved.trajectory.write_bytes(data[:100])
    g = gallery(w)
    g._details.clear()
    assert len(g.visible_outputs()) == 3
    g.select_output(saved.main)
    assert "unreadable" in g.meta.toPlainText() and "truncated" in g.meta.toPlainText()
    assert g.samples.count() == 1  # the saved picture still shows
    assert not g.branch_button.isEnabled()
    g.select_output(second.files[0])
    assert g.samples.count() == 2 and g.branch_button.isEnabled()
