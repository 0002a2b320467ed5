"""engine/bench/digits.py: the digits quality bar, judged on real digits and on an untrained model."""

import argparse

import numpy as np
import pytest

from engine import save_model
from engine.bench.digits import (
    Setting,
    add_setting_flags,
    draw_samples,
    judge_model,
    main,
    make_judge,
    real_pass_rates,
    real_reference,
    settings_from_args,
    verdict,
)

from ._tiny import tiny_image_model

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def judged():
    return make_judge(0)


def test_real_digits_meet_the_bar_and_noise_does_not(judged):
    judge, data, labels = judged
    real = data.tokens[data.train_index[:1024]].astype(np.int64)
    scores = judge.score(real)
    v = verdict(scores)
    assert scores["confident_share"] > 0.95 and v["meets_bar"]
    assert 0.05 <= v["min_class_share"] <= v["max_class_share"] <= 0.15
    noise = np.random.default_rng(0).integers(0, 17, size=(256, 64))
    assert not verdict(judge.score(noise))["meets_bar"]
    # one class only: the class range fails even when every sample is confident
    zeros = data.tokens[data.train_index][labels[data.train_index] == 0].astype(np.int64)
    one_class = judge.score(zeros)
    assert one_class["confident_share"] > 0.9 and verdict(one_class)["max_class_share"] == 1.0
    assert not verdict(one_class)["meets_bar"]


def test_few_real_samples_score_a_higher_distance_than_the_floor(judged):
    judge, data, _ = judged
    few = real_reference(judge, data, 128, [0, 1, 2])
    many = real_reference(judge, data, 1024, [0])
    # 128 samples: the estimate is biased upwards, well above the full-data floor and 1,024 samples
    assert few["frechet_distance"] > 1.5 * max(few["floor_full"], many["frechet_distance"])
    # as many samples as the floor's set, or more: all the training digits, the floor itself
    every = real_reference(judge, data, 5000, [0, 1])
    assert every["samples"] == len(data.train_index)
    assert every["frechet_distance"] == pytest.approx(every["floor_full"])
    with pytest.raises(SystemExit):  # sets of real digits that are all the same set
        main(["--real-draws", "3", "--samples", str(len(data.train_index))])


def test_the_distance_spread_shrinks_with_more_samples(judged):
    judge, data, _ = judged
    pick = np.random.default_rng(0).permutation(data.train_index)
    few, many = (data.tokens[pick[:n]].astype(np.int64) for n in (64, 1024))
    spread_few, spread_many = judge.frechet_spread(few), judge.frechet_spread(many)
    assert 0 < spread_many < spread_few / 2  # about 1/sqrt(16) as much with 16 times the samples
    assert judge.frechet_spread(many, seed=1) != spread_many  # other resamplings
    with pytest.raises(ValueError, match="at least 2"):
        judge.frechet_spread(many, draws=1)


def test_judge_model_reports_every_setting_and_seed(judged, tmp_path, capsys):
    judge, data, _ = judged
    path = save_model(tmp_path / "untrained.safetensors", tiny_image_model(size=8))
    settings = [Setting(steps=8), Setting(steps=8, strategy="confidence", temperature=0.8)]
    res = judge_model(str(path), judge, data, settings, num=32, seeds=(0, 1), eval_passes=1)
    assert [(r["setting"], r["seed"]) for r in res["rows"]] == [
        ("ancestral T=8", 0),
        ("ancestral T=8", 1),
        ("ancestral T=8", "all"),
        ("confidence T=8 temp=0.8", 0),
        ("confidence T=8 temp=0.8", 1),
        ("confidence T=8 temp=0.8", "all"),
    ]
    assert [r["samples"] for r in res["rows"]] == [32, 32, 64] * 2
    assert not any(r["meets_bar"] for r in res["rows"])
    assert all(r["frechet_spread"] > 0 for r in res["rows"])
    # the pooled row scores both seeds' samples: its class counts are their sums
    first, second, pooled = res["rows"][:3]
    assert pooled["seeds"] == [0, 1]
    summed = np.add(first["class_counts"], second["class_counts"])
    assert pooled["class_counts"] == summed.tolist()
    assert pooled["mean_nfe"] == pytest.approx((first["mean_nfe"] + second["mean_nfe"]) / 2)
    assert res["rows"][0]["class_counts"] != res["rows"][1]["class_counts"] or (
        res["rows"][0]["frechet_distance"] != res["rows"][1]["frechet_distance"]
    )
    assert res["valid_bound_bits_per_dim"] > 3.0  # untrained: near log2(17) = 4.09 bits
    assert main([str(path), "--steps", "4", "--samples", "16", "--eval-passes", "1"]) == 0
    assert "ancestral T=4" in capsys.readouterr().out


def test_nucleus_and_corrector_settings_reach_the_sampler(judged, tmp_path):
    judge, data, _ = judged
    path = save_model(tmp_path / "untrained.safetensors", tiny_image_model(size=8))
    settings = [Setting(steps=8), Setting(steps=8, top_p=0.5, corrector=0.2)]
    plain, tuned = judge_model(str(path), judge, data, settings, num=16, eval_passes=1)["rows"]
    assert tuned["setting"] == "ancestral T=8 top-p=0.5 corrector=0.2"
    # the corrector calls the network again after every step but the last; the plain sampler skips
    # the steps that reveal nothing
    assert tuned["mean_nfe"] > plain["mean_nfe"]
    assert (
        tuned["class_counts"] != plain["class_counts"]
        or tuned["frechet_distance"] != plain["frechet_distance"]
    )


def test_corrector_start_is_an_axis_of_the_grid_only_where_a_corrector_runs():
    p = argparse.ArgumentParser()
    add_setting_flags(p)
    args = p.parse_args(["--steps", "8", "--corrector", "0", "0.2", "--corrector-start", "1", "0.5"])
    labels = [s.label() for s in settings_from_args(args)]
    assert labels == [
        "ancestral T=8",
        "ancestral T=8 corrector=0.2",
        "ancestral T=8 corrector=0.2 from t=0.5",
    ]


def test_time_warp_is_an_axis_of_the_grid_and_reaches_the_sampler():
    p = argparse.ArgumentParser()
    add_setting_flags(p)
    args = p.parse_args(["--steps", "8", "--time-warp", "1", "2"])
    settings = settings_from_args(args)
    assert [s.label() for s in settings] == ["ancestral T=8", "ancestral T=8 warp=2"]
    model = tiny_image_model(size=8)
    even, warped = (draw_samples(model, s, 16, seed=0)[0] for s in settings)
    assert not np.array_equal(even, warped)  # the same seed on another time grid


def test_non_digits_models_and_tiny_sample_counts_are_refused(judged, tmp_path):
    judge, data, _ = judged
    path = save_model(tmp_path / "small.safetensors", tiny_image_model(size=4))
    with pytest.raises(ValueError, match="not an 8x8 grey 17-level digits model"):
        judge_model(str(path), judge, data, [Setting()], num=16)
    with pytest.raises(SystemExit):
        main([str(path), "--samples", "4"])


def test_the_setting_the_model_recommends_is_judged_first(judged, tmp_path):
    judge, data, _ = judged
    card = {"sampler": {"steps": 6, "corrector": 0.2}}
    path = save_model(tmp_path / "rec.safetensors", tiny_image_model(size=8), card=card)
    rows = judge_model(str(path), judge, data, [Setting(steps=6)], num=16, eval_passes=1)["rows"]
    assert [r["setting"] for r in rows] == [
        "recommended: ancestral T=6 corrector=0.2",
        "ancestral T=6",
    ]
    assert rows[0]["mean_nfe"] > rows[1]["mean_nfe"]  # the corrector really ran
    # asked for already, or switched off: judged once, as asked
    asked = [Setting(steps=6, corrector=0.2)]
    assert len(judge_model(str(path), judge, data, asked, num=16, eval_passes=1)["rows"]) == 1
    off = judge_model(str(path), judge, data, [Setting(steps=6)], num=16, eval_passes=1, recommended=False)
    assert [r["setting"] for r in off["rows"]] == ["ancestral T=6"]


def test_real_pass_rates_show_the_bar_is_noisy_for_few_samples(judged, capsys):
    judge, data, _ = judged
    few = real_pass_rates(judge, data, 128, draws=12)
    many = real_pass_rates(judge, data, 1024, draws=3)
    assert few["confident"] == many["confident"] == 1.0  # real training digits: always confident
    # 128 samples: the distance estimate is biased upwards, so real digits often miss FD <= 4
    assert few["frechet"] < many["frechet"] == 1.0 and few["bar"] <= few["frechet"]
    assert main(["--real-draws", "2", "--samples", "64"]) == 0
    assert "2 sets of 64 real training digits meet: confident 100%" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([])
