"""Sampler settings a model recommends (card "sampler"): validation, `prime generate`, recipes."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from engine import describe_settings, recommended_settings, save_model
from engine.cli import main
from engine.training.recipes import RECIPES

from ._tiny import tiny_image_model


def test_valid_recommendations_come_back_typed():
    card = {"sampler": {"corrector": 0.2, "steps": 32, "strategy": "ancestral", "top_p": 1}}
    got = recommended_settings(card)
    assert got == {"corrector": 0.2, "steps": 32, "strategy": "ancestral", "top_p": 1.0}
    assert isinstance(got["top_p"], float) and isinstance(got["steps"], int)
    assert recommended_settings({}) == {} and recommended_settings({"sampler": None}) == {}
    assert recommended_settings("not a card") == {}
    assert describe_settings(got) == "corrector 0.2, steps 32, strategy ancestral, top-p 1"


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ([0.2], "not an object"),
        ({"corector": 0.2}, "unknown sampler setting 'corector'"),
        ({"steps": 8.5}, "wrong type"),
        ({"steps": True}, "wrong type"),
        ({"strategy": 3}, "wrong type"),
        ({"corrector": 2.0}, "corrector must be in"),
        ({"corrector_start": 0}, "corrector_start must be in"),
        ({"strategy": "greedy"}, "strategy must be one of"),
        ({"steps": 10**9}, "steps must be in"),
    ],
)
def test_bad_recommendations_are_refused_by_name(sampler, message):
    with pytest.raises(ValueError, match=message):
        recommended_settings({"sampler": sampler})


def _generate(tmp_path, model_path, *flags):
    out = tmp_path / "g.png"
    code = main(["generate", "--model", str(model_path), "--out", str(out), "--num", "2", "--json", *flags])
    return code, out


def test_generate_starts_from_the_recommendation_and_flags_win(tmp_path, capsys):
    path = save_model(
        tmp_path / "rec.safetensors",
        tiny_image_model(size=4),
        card={"sampler": {"corrector": 0.25, "steps": 6, "top_p": 0.9}},
    )
    code, _ = _generate(tmp_path, path)
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    settings = payload["settings"]
    assert (settings["steps"], settings["corrector"], settings["top_p"]) == (6, 0.25, 0.9)
    assert payload["recommended_used"] == {"corrector": 0.25, "steps": 6, "top_p": 0.9}
    # the corrector calls the network after every step but the last
    assert all(n > 6 for n in payload["nfe"])

    code, _ = _generate(tmp_path, path, "--corrector", "0", "--steps", "5")
    payload = json.loads(capsys.readouterr().out)
    assert (payload["settings"]["steps"], payload["settings"]["corrector"]) == (5, 0.0)
    assert payload["settings"]["top_p"] == 0.9  # not given: still the model's
    assert payload["recommended_used"] == {"top_p": 0.9}

    code, _ = _generate(tmp_path, path, "--no-recommended")
    payload = json.loads(capsys.readouterr().out)
    assert (payload["settings"]["steps"], payload["settings"]["corrector"]) == (64, 0.0)
    assert payload["settings"]["top_p"] == 1.0 and payload["recommended_used"] == {}


def test_a_bad_recommendation_warns_and_samples_with_the_plain_defaults(tmp_path, capsys):
    path = save_model(
        tmp_path / "bad.safetensors", tiny_image_model(size=4), card={"sampler": {"corrector": 7}}
    )
    code, out = _generate(tmp_path, path, "--steps", "4")
    captured = capsys.readouterr()
    assert code == 0 and out.exists()
    assert "corrector must be in" in captured.err and "plain defaults" in captured.err
    assert json.loads(captured.out)["settings"]["corrector"] == 0.0


def test_the_text_line_names_what_the_model_recommended(tmp_path, capsys):
    path = save_model(tmp_path / "rec.safetensors", tiny_image_model(size=4), card={"sampler": {"steps": 3}})
    out = tmp_path / "g.png"
    assert main(["generate", "--model", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "rec recommends steps 3" in err and "--no-recommended" in err


def test_every_recipe_recommendation_is_valid():
    for recipe in RECIPES.values():
        card = recipe.card()
        assert recommended_settings(card) == recipe.sampler
        assert ("sampler" in card) == bool(recipe.sampler)


def test_prime_info_shows_the_recommendation_or_why_it_is_ignored(tmp_path, capsys):
    good = save_model(
        tmp_path / "good.safetensors", tiny_image_model(size=4), card={"sampler": {"corrector": 0.2}}
    )
    bad = save_model(
        tmp_path / "bad.safetensors", tiny_image_model(size=4), card={"sampler": {"steps": "many"}}
    )
    plain = save_model(tmp_path / "plain.safetensors", tiny_image_model(size=4))
    assert main(["info", str(good)]) == 0
    assert "sampler:    corrector 0.2 (recommended" in capsys.readouterr().out
    assert main(["info", str(bad)]) == 0
    assert (
        "sampler:    invalid, ignored (the model's recommended steps has the wrong type"
        in capsys.readouterr().out
    )
    assert main(["info", str(plain)]) == 0
    assert "sampler:" not in capsys.readouterr().out


def test_corrector_start_comes_from_the_card_or_the_flag(tmp_path, capsys):
    card = {"sampler": {"corrector": 0.3, "corrector_start": 0.5, "steps": 8}}
    assert recommended_settings(card)["corrector_start"] == 0.5
    path = save_model(tmp_path / "late.safetensors", tiny_image_model(size=4), card=card)
    code, out = _generate(tmp_path, path)
    late = json.loads(capsys.readouterr().out)
    assert code == 0 and late["settings"]["corrector_start"] == 0.5
    with Image.open(out) as image:
        assert json.loads(image.text["prime-settings"])["corrector_start"] == 0.5
    code, _ = _generate(tmp_path, path, "--corrector-start", "1")
    whole = json.loads(capsys.readouterr().out)
    assert whole["settings"]["corrector_start"] == 1.0
    # the corrector after every step costs more network calls than in the second half only
    assert sum(whole["nfe"]) > sum(late["nfe"])
