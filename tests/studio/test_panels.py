import asyncio

from conftest import image_config, tiny_model
from PIL import Image

import engine
from studio.history import store


def setup_entry(run, w, steps=10):
    run(w.session.load_model(tiny_model(image_config())))
    w.generate_panel.set_values({"seed_mode": "fixed", "seed": 3, "num_samples": 2, "steps": steps})
    return run(w.session.generate())


def test_export_png_gif_and_text(run, make_window, tmp_path):
    w = make_window()
    entry = setup_entry(run, w)
    png = w.session.export_entry(entry.id, "png", str(tmp_path / "out.png"))
    assert store.read_png_settings(png)["seed"] == 3
    gif = w.session.export_entry(entry.id, "gif", str(tmp_path / "out.gif"))
    with Image.open(gif) as image:
        assert image.n_frames == entry.steps_done + 1
    text = w.session.export_entry(entry.id, "text", str(tmp_path / "out.txt"))
    assert text.exists() and (tmp_path / "out.txt.json").exists()


def test_hover_shows_most_likely_values_from_the_model(run, make_window):
    w = make_window()
    setup_entry(run, w)
    w.timeline.seek(2)
    w.session.hover_pixel(0, 0, 0)

    async def wait_for_probs():
        while "%" not in w.canvas.hover.text():
            await asyncio.sleep(0.01)

    run(wait_for_probs(), timeout=20)
    assert "likely" in w.canvas.hover.text()


def test_compare_two_history_entries_and_two_settings(run, make_window):
    w = make_window()
    a = setup_entry(run, w)
    b = run(w.session.branch(4, seed=9))
    w.compare_entries(a.id, b.id)
    assert w.tabs.currentWidget() is w.compare
    assert f"#{a.id}" in w.compare.a.stats.text() and "NFE" in w.compare.b.stats.text()
    w.compare.refresh_models()
    w.compare.b.steps.setValue(5)
    w.compare.samples.setValue(1)
    ea, eb = run(w.compare.run_both())
    assert ea.settings["seed"] == eb.settings["seed"]
    assert (ea.trajectory.steps, eb.trajectory.steps) == (64, 5)
    assert "A\u2212B" in w.compare.summary.text()


def test_queue_panel_lists_and_cancels_jobs(run, make_window, bridge):
    w = make_window()
    run(w.session.load_model(tiny_model(image_config())))
    handle = w.session.handle
    long = bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=3000, seed=0))
    queued = bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=4, seed=0))

    async def check():
        await long.wait_started()
        w.queue.refresh()
        texts = [w.queue.list.item(i).text() for i in range(w.queue.list.count())]
        assert len(texts) == 2 and "running" in texts[0] and "queued" in texts[1]
        w.queue.list.setCurrentRow(1)
        w.queue._cancel()
        w.escape()  # cancels the running generation
        return await long, await queued

    partial, dropped = run(check())
    assert partial.cancelled and dropped is None
    w.queue.refresh()
    assert w.queue.list.item(0).text().startswith("idle")


def test_help_overlay_and_about(run, make_window):
    w = make_window()
    w.help.toggle()
    assert w.help.isVisible()
    w.escape()
    assert not w.help.isVisible()
    from studio.dialogs import about_text

    assert "PyTorch" in about_text("1.2.3") and "1.2.3" in about_text("1.2.3")


def test_generate_without_a_model_explains(run, make_window):
    w = make_window()
    w.generate_panel.generate.click()
    run(asyncio.sleep(0.05))
    assert w.errors and "No model is loaded" in str(w.errors[0])


def test_strip_chart_paints_empty_long_and_live_runs(qtbot):
    from studio.workspace.timeline import Timeline

    timeline = Timeline()
    qtbot.addWidget(timeline)
    timeline.resize(400, 120)
    timeline.show()
    timeline.set_steps(64, [], [], 0)  # a run that has not delivered a step yet
    timeline.grab()
    timeline.set_steps(5000, [float(i % 7) for i in range(5000)], [0.5 * (i % 3 == 0) for i in range(5000)])
    timeline.seek(2500)
    assert timeline.grab().width() == 400
    assert timeline.entries() == 5000 and "2500/5000" in timeline.label.text()
