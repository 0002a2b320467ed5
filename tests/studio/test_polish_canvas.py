"""Polish of the canvas, queue, help and Edit/View menus (issue 16, items 8 and 9).

Mask undo/redo and clearing after inpaint, a zoomed canvas that scrolls and pans, gutters that do
not look masked, queue rows with parameters and no internal jobs, the theme choice (live and
saved), copying the current output, the opaque help overlay and "Reveal" without a file manager.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import image_config, text_config, tiny_model
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

import engine
from studio import render
from studio.dialogs import reveal
from studio.history import store
from studio.queue import QueuePanel, is_internal
from studio.settings import Settings
from studio.workspace.canvas import CanvasPanel


def open_model(run, window, config=None):
    return run(window.session.load_model(tiny_model(config or image_config(), 0)))


def generate(run, window, **values):
    window.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 7, "num_samples": 2, "steps": 8, **values}
    )
    return run(window.session.generate())


def pixel_pos(view, row: int, col: int, sample: int = 0) -> QPoint:
    """Widget position of the centre of image pixel (row, col) of ``sample``."""
    n, h, w, cols = view._geometry
    cols = min(cols or int(np.ceil(np.sqrt(n))), n)
    r, c = divmod(sample, cols)
    rect, s = view.target_rect(), view.scale()
    x = rect.x() + (c * (w + 1) + col + 0.5) * s
    y = rect.y() + (r * (h + 1) + row + 0.5) * s
    assert view.locate(QPoint(int(x), int(y))) == (sample, row, col)
    return QPoint(int(x), int(y))


def stroke(qtbot, view, row: int, col: int) -> None:
    pos = pixel_pos(view, row, col)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=pos)


def test_mask_edits_undo_and_redo(run, make_window, qtbot):
    w = make_window()
    open_model(run, w)
    generate(run, w)
    view = w.canvas.view
    w.canvas.size.setValue(1)
    w.canvas.brush.setChecked(True)
    stroke(qtbot, view, 0, 0)
    stroke(qtbot, view, 3, 3)
    assert view.mask.sum() == 2 and view.mask[0, 0] and view.mask[3, 3]
    w.undo_action.trigger()  # Edit > Undo
    assert view.mask.sum() == 1 and view.mask[0, 0] and not view.mask[3, 3]
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Z on the canvas
    assert not view.mask.any()
    assert not w.undo_action.isEnabled()
    w.redo_action.trigger()
    assert view.mask.sum() == 1 and view.mask[0, 0]
    qtbot.keyClick(
        view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert view.mask.sum() == 2
    w.canvas.clear.click()  # Clear is one undoable step too
    assert not view.mask.any()
    w.undo_action.trigger()
    assert view.mask.sum() == 2
    # the eraser, with a bigger brush: a 3 x 3 square around (1, 1) takes (0, 0) away
    w.canvas.size.setValue(3)
    w.canvas.eraser.setChecked(True)
    stroke(qtbot, view, 1, 1)
    assert view.mask.sum() == 1 and view.mask[3, 3]
    w.undo_action.trigger()
    assert view.mask.sum() == 2


def test_brush_size_is_the_side_of_the_square(make_window, run, qtbot):
    w = make_window()
    open_model(run, w)
    generate(run, w)
    w.canvas.brush.setChecked(True)
    w.canvas.size.setValue(2)
    stroke(qtbot, w.canvas.view, 1, 1)
    assert w.canvas.view.mask.sum() == 4  # 2 x 2 pixels
    assert w.canvas.size_label.buddy() is w.canvas.size and "Size" in w.canvas.size_label.text()


def test_mask_cleared_after_inpaint_unless_kept(run, make_window, qtbot):
    w = make_window()
    open_model(run, w)
    parent = generate(run, w)
    view = w.canvas.view
    w.canvas.size.setValue(2)
    w.canvas.brush.setChecked(True)
    stroke(qtbot, view, 0, 0)
    painted = view.mask.copy()
    child = run(w.inpaint())
    assert child is not None and child.parent == parent.id
    assert child.settings["inpaint_pixels"] == 4
    assert not view.mask.any()  # cleared once inpainted...
    w.undo_action.trigger()
    assert np.array_equal(view.mask, painted)  # ...and Ctrl+Z brings it back
    w.canvas.keep_mask.setChecked(True)
    run(w.inpaint())
    assert np.array_equal(view.mask, painted)  # "Keep mask": the same region, ready again
    assert not w.errors


def test_zoomed_canvas_has_scrollbars_and_pans(qtbot):
    panel = CanvasPanel()
    qtbot.addWidget(panel)
    panel.resize(420, 420)
    panel.show()
    qtbot.waitExposed(panel)
    image = render.to_qimage(np.zeros((40, 40, 3), dtype=np.uint8))
    panel.view.set_image(image, 1, 40, 40)
    hbar, vbar = panel.scroll.horizontalScrollBar(), panel.scroll.verticalScrollBar()
    QApplication.processEvents()
    assert hbar.maximum() == 0 and vbar.maximum() == 0  # fit: nothing to scroll
    panel.zoom.setCurrentIndex(panel.zoom.findData(32))  # 40 px x 32 = 1280 px
    QApplication.processEvents()
    assert hbar.isVisible() and vbar.isVisible()
    viewport = panel.scroll.viewport()
    assert hbar.maximum() == 1280 - viewport.width() and vbar.maximum() == 1280 - viewport.height()
    # middle-drag pans: drag left/up by 60 px, the view moves right/down by 60 px
    start = QPoint(200, 200)
    qtbot.mousePress(panel.view, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(panel.view, start - QPoint(60, 60))
    qtbot.mouseRelease(panel.view, Qt.MouseButton.MiddleButton, pos=start - QPoint(60, 60))
    assert hbar.value() >= 55 and vbar.value() >= 55
    # Ctrl+wheel / Ctrl+- zoom: the combo box follows, the image point in the middle of the view
    # stays there, and fit removes the scrollbars
    viewport = panel.scroll.viewport()

    def centre_pixel():
        pos = QPoint(viewport.width() // 2, viewport.height() // 2) - panel.view.pos()
        return panel.view.image_pixel(pos)

    before = centre_pixel()
    panel.view.step_zoom(-1)
    assert panel.zoom.currentData() == 24
    qtbot.wait(10)
    after = centre_pixel()
    assert abs(after[0] - before[0]) <= 1 and abs(after[1] - before[1]) <= 1, (before, after)
    # Ctrl+wheel zooms about the cursor
    in_viewport = QPoint(50, 60)  # the cursor, where it is in the visible part
    under = panel.view.image_pixel(in_viewport - panel.view.pos())
    panel.view.step_zoom(1, QPointF(in_viewport - panel.view.pos()))
    assert panel.zoom.currentData() == 32
    moved = panel.view.image_pixel(in_viewport - panel.view.pos())
    assert abs(moved[0] - under[0]) <= 1 and abs(moved[1] - under[1]) <= 1, (under, moved)
    assert panel.view.pos() != QPoint(0, 0)  # it scrolled to keep that point under the cursor
    panel.zoom.setCurrentIndex(0)
    QApplication.processEvents()
    assert hbar.maximum() == 0 and vbar.maximum() == 0


def test_gutters_are_background_not_masked(qtbot):
    panel = CanvasPanel()
    qtbot.addWidget(panel)
    panel.resize(420, 420)
    panel.show()
    qtbot.waitExposed(panel)
    images = np.full((4, 8, 8, 3), 200, dtype=np.uint8)
    panel.view.set_image(render.to_qimage(render.grid(images)), 4, 8, 8)
    panel.zoom.setCurrentIndex(panel.zoom.findData(12))
    QApplication.processEvents()
    view = panel.view
    shot = view.grab().toImage()
    rect, s = view.target_rect(), view.scale()
    dpr = shot.devicePixelRatio()
    x = int((rect.x() + 8.5 * s) * dpr)  # the middle of the vertical gutter
    y = int((rect.y() + 4 * s) * dpr)
    gutter = shot.pixelColor(x, y)
    assert gutter == view.palette().base().color()
    assert (gutter.red(), gutter.green(), gutter.blue()) != render.GAP_COLOUR
    sample = shot.pixelColor(int((rect.x() + 4 * s) * dpr), y)
    assert (sample.red(), sample.green(), sample.blue()) == (200, 200, 200)
    for mode, words in (("map", ("masked", "partial", "visible")), ("confidence", ("confidence 0",))):
        panel.set_mode(mode)
        assert all(word in panel.legend.text() for word in words)


def test_queue_rows_show_parameters_and_hide_internal_jobs(run, bridge, qtbot, tmp_path):
    handle = run(bridge.load(tiny_model(image_config(), 0)))
    panel = QueuePanel(bridge)
    qtbot.addWidget(panel)
    release = threading.Event()
    blocker = bridge.submit("probe", "hold the engine", lambda _t: release.wait(30))
    request = engine.SampleRequest(num_samples=3, steps=5, seed=42, strategy="ancestral")
    job = bridge.generate(handle, request)
    other = bridge.generate(handle, request, label="inpaint (tiny)")
    warm = bridge.warm_up()
    hover = bridge.probabilities(handle, torch.zeros(1, 16, 2, dtype=torch.long))  # the hover's: internal
    train = bridge.train(image_config(), engine.TrainConfig(steps=50), None, tmp_path / "mine.safetensors")
    try:
        panel.refresh()
        rows = [panel.list.item(i).text() for i in range(panel.list.count())]
        assert len(rows) == 4, rows  # the blocker, the two generations and the training run
        row = next(r for r in rows if r.startswith("generate"))
        assert "3\u00d75" in row and "ancestral" in row and "seed 42" in row
        inpaint = next(r for r in rows if r.startswith("inpaint"))
        assert "3 samples \u00d7 5 steps" in inpaint and "seed 42" in inpaint
        train_row = next(r for r in rows if r.startswith("train"))
        assert "mine.safetensors" in train_row and "50 steps" in train_row
        assert not any("warm-up" in r or "probabilities" in r for r in rows)
        assert is_internal(warm) and is_internal(hover) and not is_internal(job)
    finally:
        for j in (train, hover, warm):
            bridge.cancel(j)
        release.set()
    run(blocker)
    run(job)
    run(other)
    panel.refresh()
    assert panel.list.item(0).text() == "idle \u2014 no jobs"


@pytest.fixture
def restore_palette(qapp):
    """The studio's style sheet on (as app.make_app sets it); the system theme and none after."""
    from studio import app
    from studio.theme import apply_theme

    sheet = qapp.styleSheet()
    qapp.setStyleSheet(app.asset_path("styles", "studio.qss").read_text(encoding="utf-8"))
    yield
    apply_theme("system")
    qapp.setStyleSheet(sheet)


def test_theme_choice_changes_the_palette_and_is_saved(make_window, settings_path, restore_palette):
    w = make_window()
    system = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    assert w.theme_actions["system"].isChecked()
    w.theme_actions["dark"].trigger()  # View > Theme > Dark
    assert QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert w.canvas.palette().base().color().lightness() < 80  # widgets follow at once
    assert w.text.view.palette().base().color().lightness() < 80
    assert w.library.list.palette().base().color().lightness() < 80  # styled widgets too
    assert "#ffd27a" in w.text.legend.text()  # the text legend in the dark colours
    assert Settings(settings_path).theme() == "dark"  # saved now, not only on quit
    w2 = make_window()
    assert w2.theme_actions["dark"].isChecked()
    w.theme_actions["light"].trigger()
    assert QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() > 200
    assert Settings(settings_path).theme() == "light"
    w.theme_actions["system"].trigger()
    assert QGuiApplication.palette().color(QPalette.ColorRole.Window) == system
    assert Settings(settings_path).theme() == "system"
    with pytest.raises(ValueError, match="theme must be one of"):
        w.set_theme("purple")


def test_saved_theme_is_applied_at_start(tmp_path, restore_palette):
    from studio.app import apply_saved_theme

    path = tmp_path / "s.ini"
    qapp = QApplication.instance()
    before = qapp.palette().color(QPalette.ColorRole.Window)
    assert apply_saved_theme(Settings(path), qapp) == "system"  # nothing saved: left alone
    assert qapp.palette().color(QPalette.ColorRole.Window) == before
    Settings(path).set_theme("dark")
    assert apply_saved_theme(Settings(path), qapp) == "dark"  # what app._main does at start
    assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
    Settings(path).set_json("appearance/theme", "neon")  # unknown: the system's
    assert Settings(path).theme() == "system"


def test_copy_image_and_text_to_the_clipboard(run, make_window):
    w = make_window()
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    assert not w.copy_image()  # nothing shown yet: says so, copies nothing
    open_model(run, w)
    entry = generate(run, w, num_samples=2)
    assert w.copy_output()  # Ctrl+Shift+C
    copied = render.qimage_to_array(clipboard.image())
    assert np.array_equal(copied, render.grid(w.session.entry_images(entry)))
    assert not w.copy_text()  # an image output has no text
    open_model(run, w, text_config())
    text_entry = generate(run, w, num_samples=2)
    assert w.copy_output()
    assert clipboard.text() == store.join_texts(w.session.entry_texts(text_entry))
    assert "-" * 40 in clipboard.text()  # both samples, separated
    assert not w.errors


def test_help_overlay_is_opaque(make_window, qtbot):
    w = make_window()
    w.resize(900, 600)
    w.help.toggle()
    assert w.help.isVisible() and w.help.geometry() == w.rect()
    shot = w.help.grab().toImage()
    corner = shot.pixelColor(3, 3)
    assert corner == w.help.palette().window().color()  # nothing underneath shows through
    assert "Ctrl+Z" in w.help.label.text()
    qtbot.mouseClick(w.help.scroll.viewport(), Qt.MouseButton.LeftButton)
    assert not w.help.isVisible()


def test_reveal_without_a_file_manager_shows_the_path(tmp_path, qtbot):
    box = reveal(None, tmp_path, "outputs folder")  # the offscreen platform has no file manager
    assert box is not None
    qtbot.addWidget(box)
    assert str(tmp_path) in box.informativeText()
    copy = next(b for b in box.buttons() if b.text() == "Copy path")
    copy.click()
    assert QGuiApplication.clipboard().text() == str(tmp_path)
    assert box.isVisible()  # copying does not close it
