import asyncio

import numpy as np
import torch
from conftest import image_config, text_config, tiny_model

import engine
from studio import render
from studio.history import store


def open_model(run, window, config=None, seed=0):
    model = tiny_model(config or image_config(), seed)
    return run(window.session.load_model(model))


def generate(run, window, **values):
    window.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 7, "num_samples": 2, "steps": 16, **values}
    )
    return run(window.session.generate())


def test_generate_fills_timeline_one_entry_per_step(run, make_window):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=16)
    assert not entry.result.cancelled
    assert w.timeline.entries() == 16
    assert w.timeline.slider.maximum() == 16 and w.timeline.value() == 16
    revealed = sum(w.timeline.chart.revealed)
    assert revealed == 2 * 16 * 2  # every digit of every sample revealed once
    assert len(w.history) == 1 and w.history_panel.items
    assert entry.files and entry.files[0].exists()
    assert not w.errors


def test_scrub_shows_the_recorded_state(run, make_window):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=16)
    renderer = render.Renderer(entry.model.config)
    for k in (0, 5, 11, 16):
        w.timeline.seek(k)
        expected = render.qimage_to_array(renderer.render(entry.trajectory.state_at(k)))
        assert np.array_equal(render.qimage_to_array(w.canvas.view.image()), expected), k
    w.canvas.set_mode("prediction")
    w.timeline.seek(5)
    expected = renderer.render(entry.trajectory.state_at(5), "prediction", entry.trajectory.prediction_at(5))
    assert np.array_equal(render.qimage_to_array(w.canvas.view.image()), render.qimage_to_array(expected))


def test_branch_child_shares_the_first_k_steps(run, make_window):
    w = make_window()
    open_model(run, w)
    parent = generate(run, w, steps=16)
    child = run(w.session.branch(6, seed=123))
    assert child.parent == parent.id and child.branch_step == 6
    assert w.history_panel.items[child.id].parent() is w.history_panel.items[parent.id]
    for k in range(7):
        assert torch.equal(child.trajectory.state_at(k), parent.trajectory.state_at(k))
    assert torch.equal(child.trajectory.revealed[:6], parent.trajectory.revealed[:6])
    assert child.settings["seed"] == 123


def test_cancel_mid_run_shows_partial_and_engine_stays_ready(run, make_window, loop):
    w = make_window()
    open_model(run, w)
    w.generate_panel.set_values({"seed_mode": "fixed", "seed": 1, "num_samples": 1, "steps": 4000})

    async def cancel_soon():
        task = asyncio.ensure_future(w.session.generate())
        while w.timeline.entries() < 5:
            await asyncio.sleep(0.005)
        w.escape()  # Esc
        return await task

    entry = run(cancel_soon())
    assert entry.result.cancelled and 5 <= entry.steps_done < 4000
    assert w.timeline.value() == entry.steps_done
    shown = render.qimage_to_array(w.canvas.view.image())
    expected = render.Renderer(entry.model.config).render(entry.trajectory.state_at(entry.steps_done))
    assert np.array_equal(shown, render.qimage_to_array(expected))
    assert "cancelled" in entry.title()
    again = generate(run, w, steps=8)
    assert not again.result.cancelled and not w.bridge.busy


def test_settings_survive_a_restart(run, make_window, settings_path):
    w = make_window()
    values = {
        "num_samples": 3,
        "steps": 33,
        "seed": 4242,
        "seed_mode": "fixed",
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 5,
        "reveal": "marginal",
        "corrector": 0.05,
    }
    w.generate_panel.set_values(values)
    w.canvas.set_mode("map")
    w.resize(1111, 655)
    w.queue_dock.hide()
    w.close()
    w2 = make_window(settings_path)
    got = w2.generate_panel.values()
    assert {k: got[k] for k in values} == values
    assert w2.canvas.current_mode() == "map"
    assert w2.height() == 655  # (the offscreen screen is 800 px wide: the width is clamped)
    assert not w2.queue_dock.isVisible() and w2.history_dock.isVisible()


def test_dropped_png_restores_its_settings(run, make_window, tmp_path):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=12, temperature=0.8, top_p=0.95, reveal="marginal", seed=31337)
    png = entry.files[0]
    settings = store.read_png_settings(png)
    assert settings["seed"] == 31337 and settings["steps"] == 12 and settings["app_version"]
    w.generate_panel.set_values(
        {"seed": 1, "steps": 64, "temperature": 1.0, "top_p": 1.0, "reveal": "joint", "seed_mode": "random"}
    )
    w.handle_files([str(png)])  # what a drop does: the PNG is read off the GUI thread
    assert w.generate_panel.values()["seed"] == 1  # not applied yet: the read is still running
    run(asyncio.gather(*list(w._tasks)))
    got = w.generate_panel.values()
    assert (got["seed"], got["steps"], got["temperature"], got["top_p"], got["reveal"], got["seed_mode"]) == (
        31337,
        12,
        0.8,
        0.95,
        "marginal",
        "fixed",
    )
    assert not w.errors


def test_inpaint_keeps_unpainted_pixels(run, make_window):
    w = make_window()
    open_model(run, w)
    parent = generate(run, w, steps=8)
    w.canvas.view.mask[:2, :] = True  # top half of 4x4
    child = run(w.session.inpaint())
    keep = torch.zeros(4, 4, dtype=torch.bool)
    keep[2:] = True
    keep = keep.reshape(-1)
    assert torch.equal(child.result.tokens[:, keep], parent.result.tokens[:, keep])
    assert child.parent == parent.id


def test_regenerate_detail_keeps_high_digits(run, make_window):
    w = make_window()
    open_model(run, w)
    parent = generate(run, w, steps=8)
    child = run(w.session.regenerate_detail(1))
    codec = engine.Codec.from_config(parent.model.config)
    assert torch.equal(codec.encode(child.result.tokens)[..., 0], codec.encode(parent.result.tokens)[..., 0])


def test_text_model_prefix_and_span(run, make_window):
    w = make_window()
    open_model(run, w, text_config())
    assert w.view_stack.currentWidget() is w.text
    entry = generate(run, w, steps=8, prefix="Hello", num_samples=2)
    assert all(t.startswith("Hello") for t in w.session.entry_texts(entry))
    assert "Hello" in w.text.view.toPlainText()
    child = run(w.session.regenerate_span(0, 10, 14))
    assert torch.equal(child.result.tokens[:, :10], entry.result.tokens[0, :10].expand(2, 10))
    assert entry.files[0].suffix == ".txt"


def test_hover_reports_digits(run, make_window):
    w = make_window()
    open_model(run, w)
    generate(run, w, steps=8)
    w.timeline.seek(3)
    w.session.hover_pixel(0, 1, 2)
    assert "digits [" in w.canvas.hover.text() and "possible" in w.canvas.hover.text()


def test_outputs_of_earlier_sessions_are_listed_and_restore_settings(run, make_window, settings_path):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=6, seed=4321, temperature=0.9)
    w.close()
    w2 = make_window(settings_path)
    group = w2.history_panel.tree.topLevelItem(0)
    assert group.text(0).startswith("Earlier sessions (1)")
    assert group.child(0).text(2) == "4321" and group.child(0).text(0) == entry.files[0].stem
    w2.generate_panel.set_values({"seed": 1, "temperature": 1.0})
    group.child(0).setSelected(True)
    got = w2.generate_panel.values()
    assert (got["seed"], got["temperature"], got["seed_mode"]) == (4321, 0.9, "fixed")
    assert not w2.errors


def test_corrector_and_marginal_reveal_scrub_exactly(run, make_window):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=12, corrector=0.1, reveal="marginal", top_k=5, top_p=0.9)
    assert entry.result.request.corrector == 0.1 and entry.result.request.reveal == "marginal"
    renderer = render.Renderer(entry.model.config)
    for k in (3, 7, 12):
        w.timeline.seek(k)
        expected = render.qimage_to_array(renderer.render(entry.trajectory.state_at(k)))
        assert np.array_equal(render.qimage_to_array(w.canvas.view.image()), expected)


def test_partial_pixels_are_hatched_when_zoomed_in(run, make_window):
    w = make_window()
    open_model(run, w)
    entry = generate(run, w, steps=16)
    w.timeline.seek(8)
    partial = w.canvas.view.partial
    state = entry.trajectory.state_at(8)
    frac = (state == entry.model.config.base).float().mean(-1)  # (N, L)
    assert partial.shape == (w.canvas.view.image().height(), w.canvas.view.image().width())
    assert partial.sum() == int(((frac > 0) & (frac < 1)).sum())  # one channel: one token per pixel
    before = w.canvas.view.grab().toImage()
    w.canvas.zoom.setCurrentIndex(w.canvas.zoom.findData(16))
    after = w.canvas.view.grab().toImage()  # paints the hatch without error
    assert after.width() == before.width()
    w.canvas.set_mode("map")
    assert w.canvas.view.partial is None


def test_work_cancelled_before_it_starts_is_closed_not_left_unawaited(run, make_window):
    w = make_window()
    started = []

    async def work():
        started.append(True)

    coro = work()
    task = w.spawn(coro)
    task.cancel()  # as closing the window does with every task it spawned
    run(asyncio.sleep(0.05))
    assert task.cancelled() and not started
    assert coro.cr_frame is None  # closed (a coroutine never started keeps its frame)
    finished = w.spawn(work())
    run(finished)
    assert started == [True]
