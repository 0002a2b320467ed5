"""The Generate panel applies the sampler settings a model's card recommends ("sampler")."""

from __future__ import annotations

import asyncio

import pytest
from conftest import image_config, tiny_model

import engine
from engine.prime import time_grid
from studio.library import card_html
from studio.workspace.generate import DEFAULTS
from studio.workspace.outputs import is_loaded

RECOMMENDS = {"corrector": 0.2, "top_p": 0.9}


def model_file(tmp_path, name, card, seed=0):
    model = tiny_model(image_config(), seed)
    return str(engine.save_model(tmp_path / f"{name}.safetensors", model, card={"steps": 3, **card}))


def load(run, window, path):
    return run(window.session.load_model(path))


def fields(window, *keys):
    values = window.generate_panel.values()
    return {key: values[key] for key in keys}


def wait_until(run, condition, timeout=30.0):
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    run(poll(), timeout=timeout)


def test_switching_models_sets_and_resets_the_recommended_fields(run, make_window, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    plain = model_file(tmp_path, "plain", {})
    w = make_window()
    panel = w.generate_panel
    panel.set_values({"steps": 20, "temperature": 0.8})  # not recommended: never touched below

    load(run, w, rec)  # the first model
    assert fields(w, "corrector", "top_p", "steps", "temperature") == {
        "corrector": 0.2,
        "top_p": 0.9,
        "steps": 20,
        "temperature": 0.8,
    }
    assert not panel.recommended_row.isHidden() and not panel.use_recommended.isHidden()
    assert panel.recommended_label.text() == "Recommended by this model: corrector 0.2, top-p 0.9"

    load(run, w, plain)  # what the recommendation set goes back to the defaults
    assert fields(w, "corrector", "top_p", "steps", "temperature") == {
        "corrector": DEFAULTS["corrector"],
        "top_p": DEFAULTS["top_p"],
        "steps": 20,
        "temperature": 0.8,
    }
    assert panel.recommended_row.isHidden()

    load(run, w, rec)  # and back
    assert fields(w, "corrector", "top_p") == RECOMMENDS
    load(run, w, rec)  # the same model again: nothing re-applied
    panel.corrector.setValue(0.1)
    load(run, w, rec)
    assert fields(w, "corrector")["corrector"] == 0.1
    assert not w.errors


def test_what_the_user_changed_is_not_put_back(run, make_window, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    plain = model_file(tmp_path, "plain", {})
    w = make_window()
    panel = w.generate_panel
    load(run, w, rec)
    panel.top_p.setValue(0.5)  # typed by the user after the switch
    load(run, w, plain)
    assert fields(w, "corrector", "top_p") == {"corrector": 0.0, "top_p": 0.5}

    load(run, w, rec)
    panel.set_values({"corrector": 0.05})  # set explicitly after the model change: it wins
    load(run, w, plain)
    assert fields(w, "corrector", "top_p") == {"corrector": 0.05, "top_p": 1.0}


def test_a_restart_remembers_what_the_recommendation_set(run, make_window, settings_path, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    plain = model_file(tmp_path, "plain", {})
    w = make_window()
    load(run, w, rec)
    w.generate_panel.top_p.setValue(0.5)  # the user's, from now on
    w.close()
    w2 = make_window(settings_path)
    assert fields(w2, "corrector", "top_p") == {"corrector": 0.2, "top_p": 0.5}
    load(run, w2, plain)
    assert fields(w2, "corrector", "top_p") == {"corrector": 0.0, "top_p": 0.5}


def test_use_puts_the_recommendation_back(run, make_window, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    w = make_window()
    panel = w.generate_panel
    load(run, w, rec)
    assert not panel.use_recommended.isEnabled()  # the fields hold the recommendation already
    panel.set_values({"steps": 30})  # a field the recommendation does not name
    assert not panel.use_recommended.isEnabled()
    panel.set_values({"corrector": 0.0, "top_p": 0.4})
    assert panel.use_recommended.isEnabled()
    panel.use_recommended.click()
    assert fields(w, "corrector", "top_p", "steps") == {"corrector": 0.2, "top_p": 0.9, "steps": 30}
    assert not panel.use_recommended.isEnabled()
    request = w.session.make_request(panel.values())
    assert (request.corrector, request.top_p) == (0.2, 0.9)
    panel.top_p.setValue(0.85)  # typed into the field
    assert panel.use_recommended.isEnabled()


@pytest.mark.parametrize(
    "sampler",
    [
        {"corrector": 2.0},  # out of range
        "fast",  # not an object
        {"bogus": 1, "corrector": 0.3},  # an unknown setting
        {"steps": "64"},  # the wrong type
        {"temperature": True},
        {"strategy": "<b>" + "x" * 5000 + "</b>"},  # long, and markup
        {"steps": 10**30},
    ],
)
def test_an_invalid_recommendation_is_one_warning_and_applies_nothing(run, make_window, tmp_path, sampler):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    bad = model_file(tmp_path, "bad", {"sampler": sampler})
    w = make_window()
    panel = w.generate_panel
    load(run, w, rec)
    load(run, w, bad)
    assert fields(w, "corrector", "top_p", "steps") == {"corrector": 0.0, "top_p": 1.0, "steps": 64}
    text = panel.recommended_label.text()
    assert text.startswith("This model's recommended settings are invalid (")
    assert text.endswith("): plain defaults used") and len(text) < 260 and "\n" not in text
    assert not panel.recommended_row.isHidden() and panel.use_recommended.isHidden()
    assert not w.errors
    entry = run(w.session.generate())  # the model still generates, with the plain defaults
    assert entry.result.request.corrector == 0.0
    html = card_html("bad", None, engine.read_model_info(bad).card, False)
    assert "Recommended sampler" in html and "invalid (" in html and "<b>x" not in html


def test_values_outside_the_fields_take_the_nearest_and_say_so(run, make_window, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": {"corrector": 0.7, "time_warp": 2.0}})
    w = make_window()
    load(run, w, rec)
    assert fields(w, "corrector")["corrector"] == 0.5  # the field's maximum
    assert not w.generate_panel.use_recommended.isEnabled()  # as near as the field goes: in use
    text = w.generate_panel.recommended_label.text()
    assert text.startswith("Recommended by this model: corrector 0.7, time-warp 2")
    assert "time-warp: not in this panel, not applied" in text
    assert text.endswith("the nearest the fields allow: corrector 0.5")


def test_reopening_an_output_keeps_its_settings(run, make_window, settings_path, tmp_path):
    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    plain = model_file(tmp_path, "plain", {})
    w = make_window()
    load(run, w, rec)
    w.generate_panel.set_values(
        {"corrector": 0.05, "top_p": 1.0, "seed_mode": "fixed", "seed": 9, "steps": 6}
    )
    entry = run(w.session.generate())
    w.close()

    w2 = make_window(settings_path)
    load(run, w2, plain)
    w2.generate_panel.set_values({"corrector": 0.3, "seed": 1})
    group = w2.history_panel.tree.topLevelItem(0)
    group.child(0).setSelected(True)  # restores its settings, then loads its model (rec)
    reopened = w2.session.entry
    wait_until(run, lambda: is_loaded(reopened.model))
    assert reopened.output == entry.output and w2.session.handle.path == rec
    assert fields(w2, "corrector", "top_p", "seed") == {"corrector": 0.05, "top_p": 1.0, "seed": 9}
    assert w2.generate_panel.recommended_label.text().startswith("Recommended by this model")
    w2.close()

    from studio.app import open_initial_model

    w3 = make_window(settings_path)  # the next start: still the output's settings, none refreshed
    run(open_initial_model(w3))
    assert w3.session.handle.path == rec
    assert fields(w3, "corrector", "top_p", "seed") == {"corrector": 0.05, "top_p": 1.0, "seed": 9}
    assert not w2.errors and not w3.errors


def test_the_library_card_lists_the_recommended_settings(tmp_path):
    html = card_html("rec", image_config().to_dict(), {"sampler": RECOMMENDS, "steps": 3}, False)
    assert "Recommended sampler" in html and "corrector 0.2, top-p 0.9" in html
    assert "Sampler</b>" not in html  # not also as a raw table
    assert "Recommended sampler" not in card_html("plain", image_config().to_dict(), {"steps": 3}, False)


def test_the_next_start_keeps_the_saved_settings_of_the_last_model(run, make_window, settings_path, tmp_path):
    from studio.app import open_initial_model

    rec = model_file(tmp_path, "rec", {"sampler": RECOMMENDS})
    other = model_file(tmp_path, "other", {"sampler": {"corrector": 0.3}}, seed=1)
    w = make_window()
    load(run, w, rec)
    w.generate_panel.corrector.setValue(0.05)  # the user's choice for this model
    w.close()

    w2 = make_window(settings_path)
    run(open_initial_model(w2))  # reopens the last model with what was saved, not its recommendation
    assert w2.session.handle.path == rec
    assert fields(w2, "corrector", "top_p") == {"corrector": 0.05, "top_p": 0.9}
    assert w2.generate_panel.recommended_label.text() == "Recommended by this model: corrector 0.2, top-p 0.9"
    w2.close()

    w3 = make_window(settings_path)
    run(open_initial_model(w3, other))  # another model named at start: its recommendation applies
    assert fields(w3, "corrector")["corrector"] == 0.3
    assert not w2.errors and not w3.errors


def test_a_changed_recommendation_reaches_the_fields_the_user_left(run, make_window, settings_path, tmp_path):
    """An updated model file (its card recommends something new) at the next start."""
    from studio.app import open_initial_model

    path = model_file(tmp_path, "updated", {"sampler": {"corrector": 0.1, "top_p": 0.9}})
    w = make_window()
    load(run, w, path)
    w.generate_panel.top_p.setValue(0.8)  # the user's; corrector stays as recommended
    w.close()
    model = tiny_model(image_config(), 0)  # the same model, its card now recommends more
    new = {"corrector": 0.3, "corrector_start": 0.3, "top_p": 0.95}
    engine.save_model(path, model, card={"steps": 3, "sampler": new})

    w2 = make_window(settings_path)
    run(open_initial_model(w2))
    assert w2.session.handle.path == path
    # corrector: the old recommendation's, untouched -> the new one; corrector_start: newly
    # recommended, at its default -> the new one; top_p: the user's -> kept
    assert fields(w2, "corrector", "corrector_start", "top_p") == {
        "corrector": 0.3,
        "corrector_start": 0.3,
        "top_p": 0.8,
    }
    w2.generate_panel.corrector.setValue(0.25)  # the user's now
    w2.close()

    w3 = make_window(settings_path)  # the recommendation did not change again: all stays
    run(open_initial_model(w3))
    assert fields(w3, "corrector", "corrector_start", "top_p") == {
        "corrector": 0.25,
        "corrector_start": 0.3,
        "top_p": 0.8,
    }
    w3.close()
    engine.save_model(path, model, card={"steps": 3, "sampler": {"top_p": 0.95}})  # fewer settings
    w4 = make_window(settings_path)
    run(open_initial_model(w4))  # corrector_start came from the recommendation: back to the default
    assert fields(w4, "corrector", "corrector_start", "top_p") == {
        "corrector": 0.25,
        "corrector_start": DEFAULTS["corrector_start"],
        "top_p": 0.8,
    }
    assert not w.errors and not w2.errors and not w3.errors and not w4.errors


def test_a_late_corrector_reaches_the_panel_the_request_and_the_saved_settings(run, make_window, tmp_path):
    late = model_file(tmp_path, "late", {"sampler": {"corrector": 0.4, "corrector_start": 0.5}})
    w = make_window()
    panel = w.generate_panel
    assert not panel.corrector_start.isEnabled()  # the corrector is off: nothing to start
    load(run, w, late)
    assert fields(w, "corrector", "corrector_start") == {"corrector": 0.4, "corrector_start": 0.5}
    assert panel.corrector_start.isEnabled()
    assert panel.recommended_label.text() == "Recommended by this model: corrector 0.4, corrector-start 0.5"
    panel.set_values({"seed_mode": "fixed", "seed": 1, "num_samples": 3, "steps": 12})
    entry = run(w.session.generate())
    assert entry.result.request.corrector_start == 0.5 and entry.settings["corrector_start"] == 0.5
    times = time_grid(12).tolist()
    changed = {step for step, index, _ in entry.trajectory.events if index.numel()}
    assert changed and all(times[k] <= 0.5 for k in changed)  # only in the second half
    panel.corrector.setValue(0.0)
    assert not panel.corrector_start.isEnabled()
    assert not w.errors
