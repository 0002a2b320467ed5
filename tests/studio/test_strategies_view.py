"""Reveal strategies in the studio: Generate panel, confidence view, strip chart captions."""

import numpy as np
import torch
from conftest import image_config, tiny_model

import engine
from studio import render
from studio.workspace.generate import GeneratePanel
from studio.workspace.timeline import Timeline


def test_generate_panel_offers_every_strategy_and_round_trips(qtbot):
    panel = GeneratePanel()
    qtbot.addWidget(panel)
    names = [panel.strategy.itemData(i) for i in range(panel.strategy.count())]
    assert names == list(engine.STRATEGIES)
    assert panel.values()["strategy"] == engine.DEFAULT_STRATEGY
    assert panel.threshold.isEnabled() == (engine.DEFAULT_STRATEGY == "threshold")
    panel.set_values({"strategy": "threshold", "threshold": 0.35})
    assert panel.values()["strategy"] == "threshold" and panel.values()["threshold"] == 0.35
    assert panel.threshold.isEnabled()
    panel.set_values({"strategy": "margin"})
    assert not panel.threshold.isEnabled() and panel.values()["strategy"] == "margin"


def test_generated_entry_uses_the_panels_strategy_and_shows_confidence(run, make_window):
    w = make_window()
    run(w.session.load_model(tiny_model(image_config())))
    w.generate_panel.set_values(
        {
            "seed_mode": "fixed",
            "seed": 3,
            "num_samples": 2,
            "steps": 32,
            "strategy": "threshold",
            "threshold": 1.0,
        }
    )
    entry = run(w.session.generate())
    request = entry.result.request
    assert request.strategy == "threshold" and request.threshold == 1.0
    assert entry.result.nfe == [32, 32]  # tau = 1: one digit per step, 32 digits
    assert w.timeline.chart.strategy == "threshold"
    w.timeline.seek(5)
    assert w.timeline.label.text().endswith("2 digits")  # one per sample
    traj = entry.trajectory
    w.canvas.set_mode("confidence")
    w.timeline.seek(20)
    renderer = render.Renderer(entry.model.config)
    expected = renderer.render(traj.state_at(20), "confidence", confidence=traj.confidence_at(20))
    shown = render.qimage_to_array(w.canvas.view.image())
    assert np.array_equal(shown, render.qimage_to_array(expected))
    assert not np.array_equal(shown, render.qimage_to_array(renderer.render(traj.state_at(20))))
    assert not w.errors


def test_confidence_colours_run_from_red_to_green():
    conf = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [float("nan"), 0.5], [float("nan"), float("nan")]]])
    rgb = render.confidence_colours(conf)  # (1, 4, 3): the least confident revealed digit counts
    red, green, amber, grey = rgb[0]
    assert red[0] > 200 and red[1] < 60 and green[1] > 150 and green[0] < 60
    assert amber[0] > 200 and 150 < amber[1] < 190 and np.allclose(grey, 127.5)


def test_timeline_label_counts_the_digits_of_the_step(qtbot):
    timeline = Timeline()
    qtbot.addWidget(timeline)
    timeline.set_steps(4, [3.0, 0.0, 5.0, 1.0], [0.0, 1.0, 0.0, 0.0])
    timeline.set_strategy("confidence")
    timeline.seek(3)
    assert timeline.label.text().endswith("5 digits")
    timeline.seek(0)
    assert "digits" not in timeline.label.text()
    timeline.resize(400, 80)
    timeline.chart.grab()  # paints the caption without error


def test_text_view_colours_revealed_tokens_by_confidence(run, make_window):
    from conftest import text_config

    w = make_window()
    run(w.session.load_model(tiny_model(text_config())))
    w.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 1, "num_samples": 1, "steps": 12, "strategy": "confidence"}
    )
    entry = run(w.session.generate())
    w.timeline.seek(6)
    doc = w.text.view.document()

    def backgrounds():
        out, block = [], doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                out.append(fragment.charFormat().background().color().name())
                it += 1
            block = block.next()
        return out

    plain = backgrounds()
    w.text.by_confidence.setChecked(True)  # re-renders the step shown
    shaded = backgrounds()
    assert shaded != plain
    expected = render.confidence_backgrounds(entry.trajectory.confidence_at(6)[0])
    assert {c for c in expected if c is not None} <= set(shaded)
    assert any(c is None for c in expected)  # masked tokens keep the state's colours at step 6
    assert not w.errors
