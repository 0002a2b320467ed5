import asyncio
import threading

import pytest
import torch
from conftest import image_config, tiny_model

import engine
from studio.bridge import CANCELLED, DONE, FAILED


def load(run, bridge, seed=0, **kw):
    return run(_await(bridge.load(tiny_model(image_config(**kw), seed))))


async def _await(job):
    return await job


async def drain(job):
    items = [item async for item in job]
    return items, await job


def test_generate_matches_the_engine_and_runs_on_the_engine_thread(run, bridge):
    handle = load(run, bridge)
    request = engine.SampleRequest(num_samples=2, steps=12, seed=5)
    items, result = run(drain(bridge.generate(handle, request)))
    assert [s.step for s in items] == list(range(1, 13))  # every step delivered, none dropped
    reference = engine.sample(tiny_model(image_config()), request)
    assert torch.equal(result.tokens, reference.tokens)
    assert result.nfe == reference.nfe


def test_previews_are_coalesced_newest_wins(run, bridge):
    handle = load(run, bridge)
    job = bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=200, seed=1))

    async def slow_consumer():
        await asyncio.sleep(0.3)  # let the engine run ahead
        items = [item async for item in job]
        return items, await job

    items, result = run(slow_consumer())
    assert [s.step for s in items] == list(range(1, 201))
    with_state = [s for s in items if s.state is not None]
    assert with_state[-1].step == 200
    assert len(with_state) < len(items)  # older previews lost their payload
    assert torch.equal(engine.Codec.from_config(image_config()).decode(with_state[-1].state), result.tokens)


def test_errors_reach_the_awaiting_coroutine(run, bridge):
    def boom(token):
        raise ValueError("bad value 42")

    job = bridge.submit("evaluate", "boom", boom)
    with pytest.raises(ValueError, match="bad value 42"):
        run(_await(job))
    assert job.status == FAILED
    assert run(_await(bridge.submit("evaluate", "ok", lambda token: 7))) == 7  # still serving


def test_queue_order_move_and_cancel(run, bridge):
    gate = threading.Event()
    order = []

    def blocker(token):
        gate.wait(10)
        return "first"

    def record(name):
        def work(token):
            order.append(name)
            return name

        return work

    first = bridge.submit("evaluate", "blocker", blocker)
    a = bridge.submit("evaluate", "a", record("a"))
    b = bridge.submit("evaluate", "b", record("b"))
    c = bridge.submit("evaluate", "c", record("c"))
    bridge.move(c, -2)  # c before a
    bridge.cancel(b)  # never runs
    assert [j.label for j in bridge.jobs()][1:] == ["c", "a"]
    gate.set()
    run(asyncio.gather(_await(first), _await(a), _await(c)))
    assert run(_await(b)) is None and b.status == CANCELLED
    assert order == ["c", "a"]
    assert first.status == DONE and not bridge.busy


def test_cancel_running_generation_keeps_partial_result(run, bridge):
    handle = load(run, bridge)
    job = bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=5000, seed=2))

    async def cancel_after_a_few():
        seen = 0
        async for _ in job:
            seen += 1
            if seen == 3:
                job.cancel()
        return await job

    result = run(cancel_after_a_few())
    assert result.cancelled and 3 <= result.steps_done < 5000
    assert job.status == CANCELLED
    again = run(_await(bridge.generate(handle, engine.SampleRequest(num_samples=1, steps=4, seed=2))))
    assert not again.cancelled and again.steps_done == 4


def test_probabilities_are_filtered(run, bridge):
    handle = load(run, bridge)
    codec = engine.Codec.from_config(handle.config)
    state = torch.full((1, handle.config.seq_length, 2), codec.mask)
    state[0, 0] = codec.encode(torch.tensor(5))
    state[0, 1, 0] = 1  # high digit 1 of base 4: values 4..7
    probs = run(_await(bridge.probabilities(handle, state)))
    assert probs.shape == (1, handle.config.seq_length, 16)
    assert torch.allclose(probs.sum(-1), torch.ones(1, handle.config.seq_length))
    assert probs[0, 0, 5] == pytest.approx(1.0)
    assert probs[0, 1, 4:8].sum() == pytest.approx(1.0, abs=1e-5)


def test_train_and_evaluate_through_the_bridge(run, bridge, tmp_path):
    from engine.data import array_dataset
    from engine.training import TrainConfig

    config = image_config()
    data = array_dataset(torch.randint(0, 16, (32, config.seq_length)), 16)
    train_config = TrainConfig(
        steps=3,
        batch_size=8,
        warmup=1,
        eval_every=0,
        preview_every=0,
        checkpoint_every=0,
        device="cpu",
        eval_batches=1,
    )
    job = bridge.train(config, train_config, data, tmp_path / "t.safetensors")
    events, summary = run(drain(job))
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "done"
    assert sum(e.kind == "step" for e in events) == 3  # training events are never dropped
    assert summary.steps_done == 3 and (tmp_path / "t.safetensors").exists()
    handle = run(_await(bridge.load(str(tmp_path / "t.safetensors"))))
    result = run(_await(bridge.evaluate(handle, data, max_items=8)))
    assert result.nats_per_token > 0


def test_background_jobs_wait_behind_later_jobs(run, bridge):
    gate = threading.Event()
    order = []
    blocker = bridge.submit("evaluate", "blocker", lambda token: gate.wait(10))
    warm = bridge.submit("load", "warm", lambda token: order.append("warm"), background=True)
    user = bridge.submit("generate", "user", lambda token: order.append("user"))
    assert [j.label for j in bridge.jobs()] == ["blocker", "user", "warm"]
    gate.set()
    run(asyncio.gather(_await(blocker), _await(warm), _await(user)))
    assert order == ["user", "warm"]
    run(_await(bridge.warm_up()))  # the real warm-up runs (and is harmless twice)
