from pathlib import Path

from conftest import answer_dialog, image_config, text_config, tiny_model

import engine
from engine.files.modelfile import save_model
from studio.library import PATH_ROLE


def test_import_load_and_remove_a_model_file(run, make_window, tmp_path):
    path = save_model(tmp_path / "tiny-text.safetensors", tiny_model(text_config()), {"steps": 10})
    w = make_window()
    w.handle_files([str(path)])  # what dropping the file does
    rows = {w.library.list.item(i).data(PATH_ROLE): i for i in range(w.library.list.count())}
    mine = next(p for p in rows if p.endswith("tiny-text.safetensors"))  # (bundled models may be listed too)
    w.library.list.setCurrentRow(rows[mine])
    assert "tiny-text" in w.library.card.toHtml()
    handle = run(w.session.load_model(mine))
    assert handle.config.modality == "text" and not handle.untrained
    assert w.view_stack.currentWidget() is w.text
    assert run(w.session.load_model(mine)) is handle  # loaded once
    asked = answer_dialog("Move to trash")
    w.library._remove()
    assert asked and "tiny-text" in asked[0]
    remaining = [w.library.list.item(i).data(PATH_ROLE) for i in range(w.library.list.count())]
    assert mine not in remaining and all("assets" in p for p in remaining)


def library_paths(w):
    return [w.library.list.item(i).data(PATH_ROLE) for i in range(w.library.list.count())]


def test_remove_asks_first_and_restore_brings_the_model_back(make_window, tmp_path):
    path = save_model(tmp_path / "keep-me.safetensors", tiny_model(image_config()), {"steps": 3})
    original = path.read_bytes()
    w = make_window()
    w.handle_files([str(path)])
    mine = next(p for p in library_paths(w) if p.endswith("keep-me.safetensors"))
    assert not w.library.restore.isEnabled()  # nothing in the trash yet
    w.library.select_path(mine)

    asked = answer_dialog("Cancel")  # the default answer keeps the model
    w.library._remove()
    assert asked and "keep-me" in asked[0]
    assert mine in library_paths(w) and engine.list_trash() == []

    answer_dialog("Move to trash")
    w.library._remove()
    assert mine not in library_paths(w)
    assert [e.name for e in engine.list_trash()] == ["keep-me"]
    assert "trash" in w.library.status.text() and w.library.restore.isEnabled()

    w.library.restore_menu.aboutToShow.emit()  # what opening the Restore menu does
    (action,) = [a for a in w.library.restore_menu.actions() if a.isEnabled()]
    assert action.text().startswith("keep-me")
    action.trigger()
    assert mine in library_paths(w)
    assert w.library.list.currentItem().data(PATH_ROLE) == mine  # selected again
    assert Path(mine).read_bytes() == original and engine.list_trash() == []
    assert not w.library.restore.isEnabled() and "Restored keep-me" in w.library.status.text()


def test_restore_says_why_when_the_name_is_taken_again(make_window, tmp_path):
    path = save_model(tmp_path / "twice.safetensors", tiny_model(image_config()))
    w = make_window()
    w.handle_files([str(path)])
    engine.remove_model("twice")
    w.handle_files([str(path)])  # a new model under the same name
    assert not w.library.restore_model("twice")
    assert "name is used by a model in your library" in w.library.status.text()
    assert [e.name for e in engine.list_trash()] == ["twice"]  # still in the trash


def test_random_model_is_marked_untrained(run, make_window):
    w = make_window()
    handle = run(w.session.load_model(image_config()))
    assert handle.untrained
    assert "UNTRAINED" in w.model_status.text()
    assert w.generate_panel.warning.isVisibleTo(w.generate_panel)


def test_broken_file_is_refused_with_a_message(run, make_window, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a model")
    w = make_window()
    w.handle_files([str(bad)])
    assert w.errors and "broken.safetensors" in str(w.errors[0])
    assert isinstance(w.errors[0], ValueError)
    assert engine  # engine stays importable without Qt state
