"""Focus routing, the wheel guard, model-change reset and a window that holds still (issue 16, 1-4)."""

from __future__ import annotations

import asyncio

from conftest import image_config, text_config, tiny_model
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea, QSpinBox, QVBoxLayout, QWidget

from studio import wheelguard


def ready_window(run, make_window, qtbot, config=None):
    w = make_window()
    w.resize(1300, 760)
    w.activateWindow()
    qtbot.waitActive(w)
    run(w.session.load_model(tiny_model(config or image_config())))
    w.generate_panel.set_values({"seed_mode": "fixed", "seed": 7, "num_samples": 2, "steps": 12})
    run(w.session.generate())
    return w


async def until(condition, timeout=60.0):
    loop = asyncio.get_event_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def click(qtbot, widget):
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=widget.rect().center())
    qtbot.wait(10)


# ---------------------------------------------------------------------- focus and shortcuts
def test_click_canvas_then_arrows_space_and_digits_act_on_the_timeline(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    w.generate_panel.steps.setFocus()  # typing starts in the form
    qtbot.wait(10)
    assert w.timeline.value() == 12
    qtbot.keyClick(w.generate_panel.steps, Qt.Key.Key_Left)  # moves the spin box's cursor only
    assert w.timeline.value() == 12
    click(qtbot, w.canvas.view)
    assert QApplication.focusWidget() is w.canvas.view
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Left)
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Left)
    assert w.timeline.value() == 10
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Home)
    assert w.timeline.value() == 0
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Right)
    assert w.timeline.value() == 1
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Space)
    assert w.timeline.timer.isActive()
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_Space)
    assert not w.timeline.timer.isActive()
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_2)
    assert w.canvas.current_mode() == "prediction"
    assert "Prediction" in w.statusBar().currentMessage()  # never silently
    qtbot.keyClick(w.canvas.view, Qt.Key.Key_1)
    assert w.canvas.current_mode() == "state"
    # the timeline itself: clicking its chart gives it focus; the keys follow
    click(qtbot, w.timeline.chart)
    assert w.timeline.isAncestorOf(QApplication.focusWidget())
    before = w.timeline.value()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Left)
    assert w.timeline.value() == max(0, before - 1)
    assert not w.errors


def test_text_view_click_gives_focus_and_arrows_scrub(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot, text_config())
    assert w.view_stack.currentWidget() is w.text
    click(qtbot, w.text.view.viewport())
    assert QApplication.focusWidget() is w.text.view
    qtbot.keyClick(w.text.view, Qt.Key.Key_Left)
    assert w.timeline.value() == 11
    qtbot.keyClick(w.text.view, Qt.Key.Key_End)
    assert w.timeline.value() == 12
    assert not w.errors


def test_typing_in_fields_never_changes_view_or_tools(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    click(qtbot, w.generate_panel.seed)
    assert QApplication.focusWidget() in (w.generate_panel.seed, w.generate_panel.seed.lineEdit())
    w.generate_panel.seed.lineEdit().selectAll()
    qtbot.keyClicks(QApplication.focusWidget(), "31")
    assert w.generate_panel.seed.value() == 31  # the digits went into the field
    assert w.canvas.current_mode() == "state"
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_E)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_B)
    assert not w.canvas.eraser.isChecked() and not w.canvas.brush.isChecked()
    w.generate_panel.suffix.setFocus()  # a line edit (also in the text box while it is hidden)
    w.canvas.brush.setFocus()  # a button: the one-key shortcuts are allowed, and say what they did
    qtbot.wait(10)
    qtbot.keyClick(w.canvas.brush, Qt.Key.Key_E)
    assert w.canvas.eraser.isChecked()
    assert "Eraser on" in w.statusBar().currentMessage()
    qtbot.keyClick(w.canvas.brush, Qt.Key.Key_E)
    assert not w.canvas.eraser.isChecked()
    # outside the canvas, text view and timeline, the arrows and Space belong to what has focus
    w.generate_panel.reveal.setFocus()
    qtbot.wait(10)
    qtbot.keyClick(w.generate_panel.reveal, Qt.Key.Key_Left)
    qtbot.keyClick(w.generate_panel.reveal, Qt.Key.Key_Space)
    assert w.timeline.value() == 12 and not w.timeline.timer.isActive()
    # on another tab the Generate tab's keys do nothing (they would change a view not on screen)
    train = w.extra_panels["Train"]
    w.tabs.setCurrentWidget(train)
    train.form.measure.setFocus()
    qtbot.wait(10)
    for key in (Qt.Key.Key_3, Qt.Key.Key_E, Qt.Key.Key_B, Qt.Key.Key_Left):
        qtbot.keyClick(train.form.measure, key)
    assert w.canvas.current_mode() == "state" and not w.canvas.eraser.isChecked()
    assert not w.canvas.brush.isChecked() and w.timeline.value() == 12
    assert not w.errors


def test_escape_and_ctrl_enter_work_from_a_spin_box(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    w.help.toggle()
    assert w.help.isVisible()
    click(qtbot, w.generate_panel.steps)
    spin = QApplication.focusWidget()
    assert spin in (w.generate_panel.steps, w.generate_panel.steps.lineEdit())
    qtbot.keyClick(spin, Qt.Key.Key_Escape)
    assert not w.help.isVisible()
    before = len(w.history)
    qtbot.keyClick(spin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    run(until(lambda: len(w.history) == before + 1))
    qtbot.keyClick(spin, Qt.Key.Key_Enter, Qt.KeyboardModifier.ControlModifier)  # the keypad's Enter
    run(until(lambda: len(w.history) == before + 2))
    qtbot.keyRelease(spin, Qt.Key.Key_Control)  # Qt keeps the last modifiers: do not leave Ctrl held
    assert not w.errors


# ---------------------------------------------------------------------- the wheel guard
def wheel(widget, steps=-3):
    """Turn the wheel over ``widget`` (negative: towards the user, i.e. scroll down / decrease)."""
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)
    return event


def test_wheel_over_an_unfocused_spin_box_scrolls_the_form_instead(qtbot):
    wheelguard.install()
    area = QScrollArea()
    inner = QWidget()
    layout = QVBoxLayout(inner)
    spins = [QSpinBox(maximum=10_000, value=2000) for _ in range(30)]
    for s in spins:
        layout.addWidget(s)
    area.setWidget(inner)
    area.resize(200, 150)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    target = spins[1]
    assert target.focusPolicy() == Qt.FocusPolicy.StrongFocus  # a wheel turn does not grab focus
    scroll = area.verticalScrollBar()
    assert scroll.value() == 0
    wheel(target)
    assert target.value() == 2000
    assert scroll.value() > 0  # the scroll area got the wheel
    target.setFocus()
    qtbot.wait(10)
    wheel(target, steps=1)
    assert target.value() == 2001  # with focus the wheel edits, as usual


def test_train_form_steps_and_combos_survive_scrolling(run, make_window, qtbot):
    w = make_window()
    w.activateWindow()
    qtbot.waitActive(w)
    train = w.extra_panels["Train"]
    w.tabs.setCurrentWidget(train)
    qtbot.wait(10)
    form = train.form
    steps, objective = form.steps.value(), form.objective.currentIndex()
    w.generate_panel.num_samples.setFocus()  # focus elsewhere
    qtbot.wait(10)
    for widget in (form.steps, form.steps.lineEdit(), form.objective):
        wheel(widget, steps=-2)
    assert form.steps.value() == steps and form.objective.currentIndex() == objective
    form.steps.setFocus()
    qtbot.wait(10)
    wheel(form.steps, steps=-1)
    assert form.steps.value() < steps


# ---------------------------------------------------------------------- the Train form
def test_fine_tune_new_switch_keeps_typed_values_and_shows_the_parent(make_window, qtbot):
    w = make_window()
    form = w.extra_panels["Train"].form
    form.new.setChecked(True)
    form.set_values({"height_": 12, "width_": 10, "levels": 64, "ell": 3})
    form.set_values({"steps": 1234, "lr": 0.0042, "name": "mine"})
    parent = image_config(height=4, width=6, num_classes=16, ell=2)
    form.set_selected("parent", "/models/parent.safetensors", parent)
    form.finetune.setChecked(True)
    # the (disabled) rows show the model that is fine-tuned: its shape and levels
    shape = (form.height_.value(), form.width_.value(), form.levels.value(), form.ell.value())
    assert shape == (4, 6, 16, 2)
    assert not form.height_.isEnabled()
    assert form.steps.value() == 1234 and form.lr.value() == 0.0042 and form.name.text() == "mine"
    form.new.setChecked(True)
    shape = (form.height_.value(), form.width_.value(), form.levels.value(), form.ell.value())
    assert shape == (12, 10, 64, 3)
    assert form.steps.value() == 1234 and form.lr.value() == 0.0042
    # what is saved while fine-tuning is the New model's geometry, not the parent's
    form.finetune.setChecked(True)
    saved = form.values()
    assert saved["mode"] == "finetune" and saved["height_"] == 12 and saved["levels"] == 64
    form.new.setChecked(True)
    form.restore(saved)
    assert form.is_finetune() and form.height_.value() == 4
    form.new.setChecked(True)
    assert form.height_.value() == 12 and form.steps.value() == 1234


# ---------------------------------------------------------------------- nothing stale
def test_loading_another_model_resets_timeline_counters_and_seed(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    assert w.timeline.entries() == 12 and "NFE" in w.timeline.counters.text()
    assert w.generate_panel.seed_used.text() == "seed 7"
    assert not w.canvas.view.image().isNull()
    run(w.session.load_model(tiny_model(image_config(height=6, width=6), seed=1)))
    assert w.timeline.entries() == 0 and w.timeline.value() == 0 and w.timeline.slider.maximum() == 0
    assert w.timeline.counters.text() == "" and w.timeline.chart.strategy == ""
    assert w.generate_panel.seed_used.text() == "" and w.generate_panel.progress.value() == 0
    assert w.canvas.view.image().isNull() and w.session.entry is None
    # the same model again keeps what is shown
    w.generate_panel.set_values({"seed_mode": "fixed", "seed": 9, "num_samples": 1, "steps": 8})
    run(w.session.generate())
    handle = w.session.handle
    w.session.set_model(handle)
    assert w.timeline.entries() == 8 and w.generate_panel.seed_used.text() == "seed 9"
    assert not w.errors


def test_strip_chart_cursor_follows_the_slider_after_a_branch(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    w.timeline.seek(4)
    assert w.timeline.chart.current == 4
    child = run(w.session.branch(4, seed=3))
    assert w.session.entry is child and w.timeline.value() == 12
    assert w.timeline.chart.current == 12  # the cursor is where the slider is
    assert w.timeline.label.text().startswith("step 12/12")
    w.timeline.seek(5)
    assert w.timeline.chart.current == 5


def test_prediction_view_says_when_none_was_recorded(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    entry = w.session.entry
    w.canvas.set_mode("prediction")
    w.timeline.seek(3)
    assert not w.canvas.view.image().isNull()  # recorded: the prediction is drawn
    entry.trajectory.predictions = None  # as an output saved without predictions
    w.timeline.seek(4)
    assert w.canvas.view.image().isNull()
    assert "No prediction was recorded at step 4" in w.canvas.view.placeholder
    w.canvas.set_mode("state")
    assert not w.canvas.view.image().isNull()
    assert "No prediction" not in w.canvas.view.placeholder


def test_a_resumed_run_shows_its_own_settings(run, make_window, tmp_path):
    import engine
    from studio.train.runs import new_run

    w = make_window()
    panel = w.extra_panels["Train"]
    form = panel.form
    form.new.setChecked(True)
    form.set_values({"height_": 16, "width_": 16, "steps": 2000, "batch": 32, "name": "typed-now"})
    cfg = image_config(height=6, width=5)
    tcfg = engine.TrainConfig(steps=777, batch_size=5, lr=0.002, ema=0.5, eval_every=7, preview_every=0)
    model = {"kind": "new", "config": cfg.to_dict()}
    record = new_run("earlier-run", str(tmp_path / "no-such-data"), model, tcfg)
    record.save(status="paused")
    panel.pending = [record]

    async def scenario():
        panel.resume_unfinished()
        run_values = (form.steps.value(), form.batch.value(), form.lr.value(), form.ema.value())
        assert run_values == (777, 5, 0.002, 0.5)
        assert (form.height_.value(), form.width_.value(), form.levels.value()) == (6, 5, 16)
        assert form.name.text() == "earlier-run" and form.data_path.text() == record.data
        assert form.eval_every.value() == 7 and form.preview_every.value() == 0
        await until(lambda: panel.job is None and panel.state not in ("waiting", "running"), 60)

    run(scenario())


# ---------------------------------------------------------------------- layout holds still
def test_long_hover_and_status_text_never_widen_the_window(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)
    w.resize(w.minimumSizeHint().width(), 700)  # as narrow as it goes: any growth would show
    qtbot.wait(50)
    width, minimum = w.width(), w.minimumSizeHint().width()
    long = "sample 1, pixel (3, 3): " + "  |  ".join(["digits [1 2] \u00b7 partial \u00b7 4 possible"] * 12)
    w.canvas.hover.setText(long)
    w.text.hover.setText(long)
    w.timeline.counters.setText(long)
    w.model_status.setText(long)
    w.generate_panel.seed_used.setText("seed 2147483647")
    w.timeline.set_steps(4096, [1.0] * 4096, [0.0] * 4096)
    w.timeline.seek(4000)
    qtbot.wait(50)
    assert w.minimumSizeHint().width() == minimum
    assert w.width() == width
    # the slider keeps its place as the step's label changes
    x = w.timeline.slider.geometry()
    w.timeline.seek(7)
    qtbot.wait(10)
    assert w.timeline.slider.geometry() == x


def test_train_buttons_stay_put_when_generate_with_it_appears(make_window, qtbot):
    w = make_window()
    panel = w.extra_panels["Train"]
    w.tabs.setCurrentWidget(panel)
    qtbot.wait(20)
    v = panel.view
    before = {b.text(): b.geometry() for b in (v.start, v.pause, v.resume, v.cancel)}
    v.open_model.show()  # a run saved its model
    qtbot.wait(20)
    assert {b.text(): b.geometry() for b in (v.start, v.pause, v.resume, v.cancel)} == before
    top = v.progress.geometry().top()
    for text in ("", "Training step 3 / 20 on cpu", "Idle."):  # the status line keeps its space
        v.status.setText(text)
        qtbot.wait(20)
        assert v.progress.geometry().top() == top, text


def test_a_running_job_shows_its_own_figures(run, make_window, qtbot):
    w = ready_window(run, make_window, qtbot)  # ancestral, seed 7, 12 steps
    old_counters = w.timeline.counters.text()
    w.generate_panel.set_values({"seed": 8, "steps": 400, "strategy": "confidence"})
    seen = {}

    async def scenario():
        task = asyncio.ensure_future(w.session.generate())
        await until(lambda: w.session.job is not None)
        seen.update(
            counters=w.timeline.counters.text(),
            strategy=w.timeline.chart.strategy,
            seed=w.generate_panel.seed_used.text(),
        )
        await task

    run(scenario())
    assert seen["counters"] != old_counters and "/400" in seen["counters"]
    assert seen["strategy"] == "confidence" and seen["seed"] == "seed 8"
