from conftest import image_config, text_config, tiny_model

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
    w.library._remove()
    remaining = [w.library.list.item(i).data(PATH_ROLE) for i in range(w.library.list.count())]
    assert mine not in remaining and all("assets" in p for p in remaining)


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
