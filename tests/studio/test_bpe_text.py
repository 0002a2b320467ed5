"""The studio with BPE text models: prompts encoded with the model's vocabulary, tokens shown as
words, what a partially decided token still allows, saved outputs reopened, the Train tab's choice.

A tiny vocabulary (about 300 entries) is learned in the test from a few sentences; tiny real
models (d_model 32, one layer).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from conftest import text_config, tiny_model
from PySide6.QtCore import QPoint
from PySide6.QtGui import QTextCursor

import engine
from studio import enginelink, render
from studio.history.store import SavedOutput
from studio.train import runs as training_runs
from studio.train.runs import Preset

TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form. "
    "And the LORD said unto Moses, Go in unto Pharaoh. And the Lord spake unto the people. "
    "The lord of the land said unto them, the heaven is high and the earth is deep. "
)


@pytest.fixture(scope="module")
def vocab():
    return engine.learn_bpe([TEXT.encode() * 4, TEXT.upper().encode()], 300).tokenizer


def bpe_config(vocab, **kw):
    base = dict(
        modality="text",
        tokenizer="bpe",
        num_classes=vocab.vocab_size,
        vocabulary=vocab,
        seq_len=16,
        d_model=32,
        n_layers=1,
        n_heads=2,
        ell=2,
    )
    base.update(kw)
    return engine.ModelConfig(**base)


def generate(run, window, **values):
    window.generate_panel.set_values(
        {"seed_mode": "fixed", "seed": 7, "num_samples": 1, "steps": 8, **values}
    )
    return run(window.session.generate())


def open_bpe(run, window, vocab, seed=0):
    return run(window.session.load_model(tiny_model(bpe_config(vocab), seed)))


def consistent(codec, digits):
    """Token ids whose digits agree with every visible digit of ``digits`` (ell,): the brute force."""
    table = codec.token_digits  # (C, ell)
    keep = torch.ones(codec.num_classes, dtype=torch.bool)
    for j, d in enumerate(digits.tolist()):
        if d != codec.mask:
            keep &= table[:, j] == d
    return torch.nonzero(keep).flatten()


def first_partial(traj, sample=0):
    """(step, token) of the first partially decided token of a trajectory, or None."""
    mask = traj.codec.mask
    for k in range(traj.steps_done + 1):
        masked = traj.state_at(k)[sample] == mask  # (L, ell)
        partial = masked.any(-1) & ~masked.all(-1)
        if partial.any():
            return k, int(torch.nonzero(partial)[0])
    return None


# ---------------------------------------------------------------------------- prompts and infill


def test_prompt_and_suffix_become_tokens_of_the_models_vocabulary(run, make_window, vocab):
    w = make_window()
    open_bpe(run, w, vocab)
    prompt, suffix = "And the LORD said", " the earth."
    ids, tail = vocab.encode(prompt), vocab.encode(suffix)
    assert len(ids) < len(prompt)  # real merges: fewer tokens than bytes
    entry = generate(run, w, prefix=prompt, suffix=suffix)
    tokens = entry.result.tokens[0]
    assert tokens[: len(ids)].tolist() == ids.tolist()
    assert tokens[-len(tail) :].tolist() == tail.tolist()
    text = w.session.entry_texts(entry)[0]
    assert text == vocab.decode(tokens.tolist()).decode("utf-8", errors="replace")
    assert text.startswith(prompt) and text.endswith(suffix)
    assert w.text.view.toPlainText().startswith(prompt)  # the view shows the entries as words
    assert entry.files[0].read_text(encoding="utf-8").startswith(prompt)  # and so does the saved text
    assert not w.errors


def test_span_infill_keeps_every_token_outside_the_span(run, make_window, vocab):
    w = make_window()
    open_bpe(run, w, vocab)
    parent = generate(run, w, prefix="In the beginning God")
    child = run(w.session.regenerate_span(0, 3, 7))
    keep = torch.ones(16, dtype=torch.bool)
    keep[3:7] = False
    assert torch.equal(child.result.tokens[0][keep], parent.result.tokens[0][keep])
    assert (child.result.tokens[0] >= 0).all() and int(child.result.tokens.max()) < vocab.vocab_size
    # selecting text of the view picks tokens, not characters: a selection inside token 5 is token 5
    view = w.text.view
    start, end = view.token_span(0, 5)
    cursor = view.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    view.setTextCursor(cursor)
    assert view.selected_span() == (0, 5, 6)


# ---------------------------------------------------------------------------- the text view


def test_visible_tokens_show_their_entries_and_hover_outlines_one(run, make_window, vocab, qtbot):
    w = make_window()
    open_bpe(run, w, vocab)
    entry = generate(run, w, prefix="And the LORD said unto")
    tokens = entry.result.tokens[0].tolist()
    view = w.text.view
    # every token is one span of the view holding exactly its entry's text (all ASCII here)
    plain = view.toPlainText()
    for i, t in enumerate(tokens):
        start, end = view.token_span(0, i)
        raw = vocab.token_bytes(t)  # an untrained model samples any entry, single odd bytes too
        if raw.isascii() and (raw.decode().isprintable() or raw == b"\n"):
            assert plain[start:end] == raw.decode(), i
        else:
            assert end > start, i  # still one glyph at least, so it can be hovered
    # hovering a token with the mouse outlines it and says which entry it is
    i = next(i for i, t in enumerate(tokens) if len(vocab.token_bytes(t)) >= 3)
    start, end = view.token_span(0, i)
    cursor = QTextCursor(view.document())
    cursor.setPosition(start + 1)
    rect = view.cursorRect(cursor)
    qtbot.mouseMove(view.viewport(), QPoint(rect.center().x(), rect.center().y()))
    assert view.highlighted == (0, i)
    sel = view.extraSelections()
    assert len(sel) == 1 and (sel[0].cursor.selectionStart(), sel[0].cursor.selectionEnd()) == (start, end)
    label = w.text.hover.text()
    word = '"' + vocab.token_bytes(tokens[i]).decode() + '"'
    assert f"token {i + 1} of 16" in label and f"token {tokens[i]} {word}" in label
    assert f"({len(vocab.token_bytes(tokens[i]))} bytes)" in label
    qtbot.mouseMove(view.viewport(), QPoint(view.viewport().width() - 2, view.viewport().height() - 2))
    assert view.highlighted is None or view.highlighted != (0, i)


def test_a_partial_token_says_how_many_entries_its_digits_allow(run, make_window, vocab):
    w = make_window()
    model = tiny_model(bpe_config(vocab))
    run(w.session.load_model(model))
    entry = generate(run, w, steps=12)
    found = first_partial(entry.trajectory)
    assert found is not None, "the sampler reveals digits one at a time: some token is partial"
    step, i = found
    w.timeline.seek(step)
    digits = entry.trajectory.state_at(step)[0, i]
    codec = engine.Codec.from_config(entry.model.config)
    allowed = consistent(codec, digits)
    known = int((digits != codec.mask).sum())
    w.session.hover_token(0, i)
    head = f"{known} digit{'' if known == 1 else 's'} of 2 known: {allowed.numel():,} candidates"
    assert head in w.text.hover.text()
    assert head in w.text.view.viewport().toolTip()

    async def wait_for_probs():
        while "%" not in w.text.hover.text():
            await asyncio.sleep(0.01)

    run(wait_for_probs(), timeout=30)
    # the words listed are the most likely allowed entries under the model, in order
    probs = enginelink.probabilities(model, entry.trajectory.state_at(step)[:1])[0, i].double()
    p = probs[allowed] / probs[allowed].sum()
    best = allowed[torch.argsort(p, descending=True, stable=True)[:3]].tolist()
    words = [render.Renderer(entry.model.config).token_label(t) for t in best]
    label = w.text.hover.text()
    positions = [label.index(word + " ") for word in words]
    assert positions == sorted(positions), (words, label)
    # the inline view of that token is U+2592, or its few candidates spelled out
    segs = render.Renderer(entry.model.config).text_segments(digits.unsqueeze(0))
    if allowed.numel() > render.MAX_CANDIDATES_SHOWN:
        assert segs[0][0] == "\u2592"
    else:
        assert all(vocab.token_bytes(t).decode() in segs[0][0] for t in allowed.tolist())


def test_candidates_without_probabilities_put_the_recorded_prediction_first(vocab):
    cfg = bpe_config(vocab)
    r = render.Renderer(cfg)
    codec = engine.Codec.from_config(cfg)
    token = int(vocab.encode(" LORD")[0])
    digits = codec.encode(torch.tensor(token))
    digits[1] = codec.mask  # the low digit undecided
    allowed = consistent(codec, digits).tolist()
    assert token in allowed and len(allowed) > 1
    n, ranked = r.ranked_candidates(digits, predicted=token)
    assert n == len(allowed) and ranked[0] == (token, None)
    assert [t for t, _ in ranked][1:] == [t for t in allowed if t != token][: len(ranked) - 1]
    text = r.describe_text_token(digits, predicted=token)
    assert text.startswith(f"1 digit of 2 known: {len(allowed)} candidates: {r.token_label(token)}, ")
    assert r.describe_text_token(torch.full((2,), codec.mask)) == f"masked: any of {vocab.vocab_size} entries"


def test_tables_match_brute_force_with_a_permutation(vocab):
    perm = tuple(np.random.default_rng(3).permutation(vocab.vocab_size).tolist())
    cfg = bpe_config(vocab, permutation=perm)
    r = render.Renderer(cfg)
    codec = engine.Codec.from_config(cfg)
    rng = np.random.default_rng(0)
    states = torch.from_numpy(rng.integers(0, codec.base + 1, (200, 2)))
    _, count, _ = r.token_stats(states)
    for k in range(states.shape[0]):
        allowed = consistent(codec, states[k])
        assert count[k] == allowed.numel(), states[k]
    visible = codec.encode(torch.arange(vocab.vocab_size))
    mean, count, _ = r.token_stats(visible)
    assert (count == 1).all() and np.array_equal(np.round(mean).astype(int), np.arange(vocab.vocab_size))


def test_split_characters_and_control_bytes_keep_one_glyph_per_token(vocab):
    r = render.Renderer(bpe_config(vocab))
    e_acute = [vocab.encode(bytes([b]))[0] for b in "é".encode()]  # two single-byte tokens
    texts = r.token_texts([int(t) for t in e_acute] + [int(vocab.encode("\x07")[0])])
    assert texts == ["é", "\u00b7", "\u00b7"]
    assert r.token_texts([int(vocab.encode("\n")[0])]) == ["\n"]
    # in hover text an entry is a quoted word, escaped where it is not printable text
    assert r.token_label(int(vocab.encode(b"\xff")[0])) == '"\\xff"'
    assert r.token_label(int(vocab.encode("\n")[0])) == '"\\n"'


# ---------------------------------------------------------------------------- saved outputs


def test_a_saved_output_reopens_with_the_vocabulary_of_its_model_file(run, make_window, vocab, tmp_path):
    path = engine.save_model(engine.user_models_dir() / "tiny-bpe.safetensors", tiny_model(bpe_config(vocab)))
    w = make_window()
    run(w.session.load_model(str(path)))
    entry = generate(run, w, prefix="The lord of")
    shown = w.text.view.toPlainText()
    main = entry.files[0]
    w.close()

    w2 = make_window()
    reopened = w2.session.open_output(main)
    assert reopened.model.config.vocabulary is not None
    assert reopened.model.config.vocabulary.digest == vocab.digest
    assert w2.text.view.toPlainText() == shown
    details = w2.extra_panels["Gallery"].details(SavedOutput(main))
    assert details.texts == [vocab.decode(entry.result.tokens[0].tolist()).decode(errors="replace")]

    # the model file gone: the gallery reads the saved text; the steps show token ids
    path.unlink()
    w2.extra_panels["Gallery"]._details.clear()
    details = w2.extra_panels["Gallery"].details(SavedOutput(main))
    assert details.texts and details.texts[0].startswith("The lord of")
    w3 = make_window()
    again = w3.session.open_output(main)
    assert again.model.config.vocabulary is None
    assert f"\u27e8{int(entry.result.tokens[0, 0])}\u27e9" in w3.text.view.toPlainText()


# ---------------------------------------------------------------------------- the Train tab


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(training_runs.PRESETS, "tiny", Preset("tiny", 16, 1, 2, 20, 4, 3e-3, 0.9, 10))


def text_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, line in enumerate(TEXT.split(". ")):
        (folder / f"doc{i}.txt").write_text((line + ".\n") * 6, encoding="utf-8")
    return folder


def test_a_new_bpe_text_model_learns_its_vocabulary_from_the_data(make_window, run, tmp_path, tiny_preset):
    data = text_folder(tmp_path / "data")
    w = make_window()
    panel = w.extra_panels["Train"]
    f = panel.form
    f.new.setChecked(True)
    f.apply_preset("tiny")
    f.set_values({"modality": "text", "seq_len": 16, "ell": 2, "tokenizer": "bpe", "vocab_size": 300})
    f.set_values({"name": "bpe-run", "steps": 3, "batch": 2, "eval_every": 0, "preview_every": 0})
    f.set_values({"checkpoint_every": 0})
    assert f.vocab_size.isVisibleTo(f) and f.seq_len.suffix() == " tokens"
    assert f.model_config().vocabulary is None and f.needs_vocabulary() is False  # no data yet

    async def scenario():
        report = await panel.check_data(str(data))
        assert report.ok, report.problem
        assert panel.start_blocker() is None, panel.start_blocker()
        assert panel.start() is not None
        await training_runs_finished(panel)
        return report

    run(scenario(), 120)
    cfg = f.model_config() if panel.record is None else panel.record.model_config()
    expected = engine.learn_vocabulary(str(data), 300, f.train_config().data_options()).tokenizer
    assert cfg.vocabulary is not None and cfg.vocabulary.digest == expected.digest
    assert cfg.num_classes == expected.vocab_size
    assert "learned from this data" in f.vocab_note.text()
    stats = f.stats.text()
    assert "vocabulary" in stats and "bytes per token" in stats and "longest tokens" in stats
    preview = panel.view.preview_text.toPlainText()
    assert "|" in preview and "every byte is one token" not in panel.view.preview_title.text()
    # padding newline tokens ("|\n" each) are one mark, as for bytes
    assert "\u23ce\u00d7" in preview and "|\n|\n" not in preview
    assert panel.record.status == "done", panel.record.message
    assert panel.record.vocabulary_path.is_file()
    trained = next(e for e in engine.list_models() if e.name == "bpe-run")
    assert trained.info.config.tokenizer == "bpe"
    assert trained.info.config.vocabulary.digest == expected.digest
    # another size needs another vocabulary: Start waits for the data to be checked again
    f.set_values({"vocab_size": 280})
    assert f.needs_vocabulary() and panel.start_blocker() is not None


async def training_runs_finished(panel, timeout=90):
    from studio.train.selftest import until

    await until(lambda: panel.state == "idle" and panel.job is None, timeout, "the run to end")


def test_fine_tuning_shows_the_parents_tokens_read_only(make_window, vocab):
    path = engine.save_model(
        engine.user_models_dir() / "parent-bpe.safetensors", tiny_model(bpe_config(vocab))
    )
    w = make_window()
    f = w.extra_panels["Train"].form
    parent = engine.read_model_info(path).config
    f.set_selected("parent-bpe", str(path), parent)
    f.finetune.setChecked(True)
    assert f.tokenizer.currentData() == "bpe" and not f.tokenizer.isEnabled()
    assert f.vocab_size.value() == vocab.vocab_size and not f.vocab_size.isEnabled()
    assert f"{vocab.vocab_size:,} entries" in f.vocab_note.text() and "parent" in f.vocab_note.text()
    assert f.model_config().vocabulary.digest == vocab.digest
    assert f.vocabulary_key() is None  # nothing to learn: the parent's vocabulary is kept
    f.new.setChecked(True)
    assert f.tokenizer.isEnabled()


def test_hover_label_leaves_byte_models_as_they_were(run, make_window):
    w = make_window()
    run(w.session.load_model(tiny_model(text_config())))
    generate(run, w, steps=8, prefix="Hi")
    w.session.hover_token(0, 0)
    assert "byte 0" in w.text.hover.text() and "digits [" in w.text.hover.text()


def test_a_run_record_keeps_its_vocabulary_for_a_resume(vocab):
    cfg = bpe_config(vocab)
    model = {"kind": "new", "config": cfg.to_dict()}
    record = training_runs.new_run("r", "/data", model, engine.TrainConfig(steps=2), vocabulary=vocab)
    record.save()
    again = training_runs.RunRecord.load(record.record_path)
    training_runs._VOCABULARIES.clear()  # read from the file, as after a restart
    assert again.model_config().vocabulary.digest == vocab.digest
    assert again.model_source().vocabulary.encode("the LORD").tolist() == vocab.encode("the LORD").tolist()
    other = engine.learn_bpe([b"something else entirely, and more of it " * 20], 280).tokenizer
    again.vocabulary_path.write_text(other.to_json(), encoding="utf-8")
    training_runs._VOCABULARIES.clear()
    with pytest.raises(ValueError, match="vocabulary"):
        again.model_config()
    again.vocabulary_path.unlink()
    with pytest.raises(ValueError, match="unreadable"):
        again.model_config()


def test_the_tokenizer_choice_survives_a_restart(make_window, settings_path):
    w = make_window()
    f = w.extra_panels["Train"].form
    f.new.setChecked(True)
    f.set_values({"modality": "text", "tokenizer": "bpe", "vocab_size": 5000})
    w.close()
    values = make_window(settings_path).extra_panels["Train"].form.values()
    assert (values["modality"], values["tokenizer"], values["vocab_size"]) == ("text", "bpe", 5000)
