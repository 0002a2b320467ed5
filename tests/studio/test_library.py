from conftest import image_config, text_config, tiny_model

import engine
from engine.checkpoints import save_model


def test_import_load_and_remove_a_model_file(run, make_window, tmp_path):
    path = save_model(tmp_path / "tiny-text.safetensors", tiny_model(text_config()), {"steps": 10})
    w = make_window()
    w.handle_files([str(path)])  # what dropping the file does
    names = [w.library.list.item(i).text() for i in range(w.library.list.count())]
    assert any(n.startswith("tiny-text") for n in names)
    assert "tiny-text" in w.library.card.toHtml()
    w.library.list.setCurrentRow(0)
    handle = run(w.session.load_model(w.library.first_usable()))
    assert handle.config.modality == "text" and not handle.untrained
    assert w.view_stack.currentWidget() is w.text
    assert run(w.session.load_model(w.library.first_usable())) is handle  # loaded once
    w.library._remove()
    assert w.library.list.count() == 0 and w.library.empty.isVisibleTo(w.library)


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
