"""The denoising history of a batch of samples in O(sub-tokens) memory.

Without a corrector every digit goes from the mask to its final value exactly once, so the whole
history is the value each digit took and the step at which it was revealed. With a corrector,
later changes are recorded as (step, index, value) events. Any step is rebuilt in O(N).
"""

from __future__ import annotations

from typing import Any

import torch

from engine.prime.codec import Codec


class Trajectory:
    """Record of one sampling run (N samples, T steps, L tokens of ell digits).

    Attributes: times (T+1,) float64 from 1 to 0; initial (N, L, ell) state at step 0;
    fixed (N, L, ell) conditioned digits; revealed (T, N) digits first revealed per step;
    idle (T, N) steps where nothing changed; called (T, N) network calls per step;
    steps_done: how many steps were taken (< T after a cancel).
    """

    def __init__(
        self,
        codec: Codec,
        times: torch.Tensor,
        initial: torch.Tensor,
        fixed: torch.Tensor,
        record_predictions: bool = False,
    ) -> None:
        n, length, ell = initial.shape
        if not torch.equal(fixed, initial != codec.mask):
            raise ValueError("the digits visible at step 0 must be exactly the fixed (conditioned) ones")
        self.codec = codec
        self.times = times.clone()
        self.steps = int(times.numel() - 1)
        # compact storage: the smallest integer types that hold the digits and the step numbers
        self.digit_dtype = (
            torch.uint8 if codec.mask < 256 else torch.int16 if codec.mask < 2**15 else torch.int32
        )
        self.step_dtype = torch.int16 if self.steps < torch.iinfo(torch.int16).max else torch.int32
        self.not_revealed = torch.iinfo(self.step_dtype).max
        self.first_value = initial.to(self.digit_dtype).clone()  # (N, L, ell) value at first reveal
        # step at which each digit was revealed: 0 = fixed from the start (the condition)
        self.reveal_step = torch.where(
            fixed,
            torch.zeros(initial.shape, dtype=self.step_dtype),
            torch.full(initial.shape, self.not_revealed, dtype=self.step_dtype),
        )
        self.events: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (step, flat index (E,), value (E,))
        self.revealed = torch.zeros(self.steps, n, dtype=torch.int32)
        self.idle = torch.zeros(self.steps, n, dtype=torch.bool)
        self.called = torch.zeros(self.steps, n, dtype=torch.int16)
        self.predictions: torch.Tensor | None = (
            torch.full(
                (self.steps, n, length), -1, dtype=torch.int16 if codec.num_classes < 2**15 else torch.int32
            )
            if record_predictions
            else None
        )
        # optional: pi^{ij} of the value each digit took when first revealed (NaN: not revealed
        # or fixed), (N, L, ell) float16; the sampler fills it when predictions are recorded
        self.reveal_confidence: torch.Tensor | None = None
        self.steps_done = 0

    @property
    def num_samples(self) -> int:
        """N."""
        return int(self.first_value.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N, L, ell)."""
        n, length, ell = self.first_value.shape
        return int(n), int(length), int(ell)

    @property
    def fixed(self) -> torch.Tensor:
        """(N, L, ell) bool: the conditioned digits, visible from step 0 and never changed."""
        return self.reveal_step == 0

    @property
    def initial(self) -> torch.Tensor:
        """(N, L, ell) the state at step 0."""
        return self.state_at(0)

    # -- recording -------------------------------------------------------------------------------

    def record_step(
        self,
        step: int,
        newly_revealed: torch.Tensor,
        values: torch.Tensor,
        called: torch.Tensor,
        changed: torch.Tensor,
        prediction: torch.Tensor | None,
    ) -> None:
        """Record step ``step`` (1..T).

        newly_revealed (N, L, ell) first reveals with their ``values``; ``called`` (N,) network calls;
        ``changed`` (N,) samples that changed at all; ``prediction`` (N, L) the guess made at this step.
        """
        assert step == self.steps_done + 1, "steps must be recorded in order"
        newly_revealed = newly_revealed.cpu()
        self.reveal_step[newly_revealed] = step
        self.first_value[newly_revealed] = values.cpu()[newly_revealed].to(self.digit_dtype)
        self.revealed[step - 1] = newly_revealed.flatten(1).sum(-1).to(torch.int32)
        self.called[step - 1] = called.cpu().to(torch.int16)
        self.idle[step - 1] = ~changed.cpu()
        if prediction is not None and self.predictions is not None:
            self.predictions[step - 1] = prediction.cpu().to(torch.int32)
        self.steps_done = step

    def record_reveals(
        self,
        step: int,
        digits: torch.Tensor,
        values: torch.Tensor,
        called: torch.Tensor,
        revealed: torch.Tensor,
        prediction: torch.Tensor | None = None,
        confidence: torch.Tensor | None = None,
    ) -> None:
        """Record step ``step`` (1..T) given only the digits first revealed in it.

        digits (E,) flat indices into (N, L, ell) with their ``values`` (E,); called (N,) network
        calls; revealed (N,) digits revealed per sample (0 = idle step); prediction (N, L) the
        guess made at this step; confidence (E,) pi of the revealed values (``reveal_confidence``).
        The same record as :meth:`record_step`, at a cost that grows with E, not with N L ell.
        """
        assert step == self.steps_done + 1, "steps must be recorded in order"
        digits = digits.cpu()
        self.reveal_step.view(-1)[digits] = step
        self.first_value.view(-1)[digits] = values.cpu().to(self.digit_dtype)
        if confidence is not None and self.reveal_confidence is not None:
            self.reveal_confidence.view(-1)[digits] = confidence.cpu().to(self.reveal_confidence.dtype)
        revealed = revealed.cpu()
        self.revealed[step - 1] = revealed
        self.called[step - 1] = called.cpu()
        self.idle[step - 1] = revealed == 0
        if prediction is not None and self.predictions is not None:
            self.predictions[step - 1] = prediction.cpu()
        self.steps_done = step

    def record_steps(
        self,
        first: int,
        last: int,
        reveal_step: torch.Tensor,
        values: torch.Tensor,
        called: torch.Tensor,
        revealed: torch.Tensor,
    ) -> None:
        """Record steps first+1 .. last at once, from a plan known in advance.

        reveal_step (N, L, ell): the step each digit is revealed at (digits outside first+1..last
        are left alone); values (N, L, ell) their values; called, revealed (last - first, N).
        """
        if last <= first:
            return
        new = (reveal_step > first) & (reveal_step <= last)  # (N, L, ell)
        self.reveal_step[new] = reveal_step[new].to(self.step_dtype)
        self.first_value[new] = values[new].to(self.digit_dtype)
        self.revealed[first:last] = revealed
        self.called[first:last] = called
        self.idle[first:last] = revealed == 0
        self.steps_done = last

    def record_changes(self, step: int, mask: torch.Tensor, values: torch.Tensor) -> None:
        """Record later changes of already revealed digits (corrector) at ``step``: mask (N, L, ell)."""
        mask = mask.cpu()
        if bool(mask.any()):
            flat = mask.flatten().nonzero().squeeze(-1)
            self.events.append((step, flat, values.cpu().flatten()[flat].to(self.digit_dtype)))

    # -- reading ---------------------------------------------------------------------------------

    def state_at(self, step: int) -> torch.Tensor:
        """Digits (N, L, ell) after ``step`` steps (0 = start); the mask symbol is codec.mask."""
        if not 0 <= step <= self.steps_done:
            raise ValueError(f"step must be in 0..{self.steps_done}, got {step}")
        y = torch.where(
            self.reveal_step <= step, self.first_value, torch.full_like(self.first_value, self.codec.mask)
        )
        if self.events:
            flat = y.flatten()
            for ev_step, index, value in self.events:
                if ev_step > step:
                    break
                flat[index] = value
            y = flat.view_as(y)
        return y.long()

    def tokens_at(self, step: int) -> torch.Tensor:
        """Tokens (N, L) after ``step`` steps; -1 where a token still has a masked digit."""
        return self.codec.decode(self.state_at(step))

    def prediction_at(self, step: int) -> torch.Tensor | None:
        """The model's predicted clean tokens (N, L) looking at the state after ``step`` steps.

        None when predictions were not recorded. At the final step this is the sample itself.
        """
        if self.predictions is None:
            return None
        if not 0 <= step <= self.steps_done:
            raise ValueError(f"step must be in 0..{self.steps_done}, got {step}")
        if step == self.steps:
            return self.tokens_at(step).to(torch.int32)
        if step == self.steps_done:  # cancelled: no prediction was made from this state yet
            return None
        return self.predictions[step].clone()

    def confidence_at(self, step: int) -> torch.Tensor | None:
        """(N, L, ell) float32: each digit's confidence when revealed, for digits revealed by ``step``.

        NaN for digits still masked or fixed; None when confidence was not recorded.
        """
        if self.reveal_confidence is None:
            return None
        if not 0 <= step <= self.steps_done:
            raise ValueError(f"step must be in 0..{self.steps_done}, got {step}")
        shown = (self.reveal_step > 0) & (self.reveal_step <= step)
        return torch.where(shown, self.reveal_confidence.float(), torch.tensor(float("nan")))

    def nfe(self) -> list[int]:
        """Network calls per sample so far."""
        return [int(v) for v in self.called[: self.steps_done].sum(0, dtype=torch.int64)]

    def idle_steps(self) -> list[int]:
        """Idle steps per sample so far."""
        return [int(v) for v in self.idle[: self.steps_done].sum(0)]

    def nbytes(self, per_step: bool = True) -> int:
        """Memory held by the record in bytes.

        The digit record (values, reveal steps, fixed mask, corrector events) does not grow with T;
        ``per_step`` adds the (T, N) counters, the time grid and recorded predictions, which do.
        """
        tensors = [self.first_value, self.reveal_step]
        if self.reveal_confidence is not None:
            tensors.append(self.reveal_confidence)
        if per_step:
            tensors += [self.times, self.revealed, self.idle, self.called]
            if self.predictions is not None:
                tensors.append(self.predictions)
        total = sum(t.numel() * t.element_size() for t in tensors)
        total += sum(i.numel() * i.element_size() + v.numel() * v.element_size() for _, i, v in self.events)
        return int(total)

    # -- branching -------------------------------------------------------------------------------

    def truncated(self, step: int, record_predictions: bool) -> Trajectory:
        """A copy holding steps 0..``step`` only, ready for sampling to continue after ``step``."""
        if not 0 <= step <= self.steps_done:
            raise ValueError(f"branch step must be in 0..{self.steps_done}, got {step}")
        child = Trajectory(self.codec, self.times, self.initial, self.fixed, record_predictions)
        keep = self.reveal_step <= step
        child.reveal_step = torch.where(
            keep, self.reveal_step, torch.full_like(self.reveal_step, child.not_revealed)
        )
        child.first_value = torch.where(keep, self.first_value, child.first_value)
        child.events = [(s, i, v) for s, i, v in self.events if s <= step]
        child.revealed[:step] = self.revealed[:step]
        child.idle[:step] = self.idle[:step]
        child.called[:step] = self.called[:step]
        if child.predictions is not None and self.predictions is not None:
            child.predictions[:step] = self.predictions[:step]
        if self.reveal_confidence is not None:
            child.reveal_confidence = torch.where(
                keep, self.reveal_confidence, torch.full_like(self.reveal_confidence, float("nan"))
            )
        child.steps_done = step
        return child

    # -- serialising -----------------------------------------------------------------------------

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Every field of the record as (tensors, a small JSON-able dict); lossless.

        Fields are found generically (``vars(self)``), so a field added later is saved without a
        change here: a tensor goes to ``tensors`` under its name, an int/float/str/bool to
        ``meta["scalars"]``, a ``torch.dtype`` to ``meta["dtypes"]``, None to ``meta["none"]``.
        The codec becomes ``meta["codec"]`` and the corrector events four flat tensors
        (``events.step``, ``events.count`` (K,), ``events.index``, ``events.value`` (sum E,)).
        Any other kind of field raises TypeError (a field this format cannot hold).
        """
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "record_version": RECORD_VERSION,
            "codec": {
                "num_classes": self.codec.num_classes,
                "ell": self.codec.ell,
                "permutation": None
                if self.codec.permutation is None
                else [int(v) for v in self.codec.permutation],
            },
            "scalars": {},
            "dtypes": {},
            "none": [],
        }
        for name, value in vars(self).items():
            if name == "codec":
                continue
            if name == "events":
                tensors.update(_events_to_tensors(value, self.digit_dtype))
            elif isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu()
            elif value is None:
                meta["none"].append(name)
            elif isinstance(value, torch.dtype):
                meta["dtypes"][name] = str(value).removeprefix("torch.")
            elif isinstance(value, (bool, int, float, str)):
                meta["scalars"][name] = value
            else:
                raise TypeError(f"Trajectory.{name} is a {type(value).__name__}: add it to to_tensors")
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Trajectory:
        """The record :meth:`to_tensors` described; ValueError naming what does not fit.

        Checks shapes, dtypes and value ranges of the known fields (digits within 0..mask,
        reveal steps within 0..steps_done, event indices inside the record). A field missing from
        an older record keeps the value a fresh record starts with; extra fields are kept.
        """
        version = meta.get("record_version")
        if not isinstance(version, int) or not 1 <= version <= RECORD_VERSION:
            raise ValueError(
                f"unsupported trajectory record version {version!r} (this build reads 1..{RECORD_VERSION})"
            )
        try:
            spec = meta["codec"]
            perm = spec.get("permutation")
            codec = Codec(int(spec["num_classes"]), int(spec["ell"]), None if perm is None else tuple(perm))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"invalid codec in the trajectory record: {exc}") from None
        scalars, dtypes, none = meta.get("scalars", {}), meta.get("dtypes", {}), meta.get("none", [])
        if not isinstance(scalars, dict) or not isinstance(dtypes, dict) or not isinstance(none, list):
            raise ValueError("invalid trajectory record: scalars, dtypes and none must be a dict, dict, list")
        for name in ("first_value", "reveal_step", "times"):
            if name not in tensors:
                raise ValueError(f"the trajectory record has no {name!r} tensor")
        first, reveal, times = tensors["first_value"], tensors["reveal_step"], tensors["times"]
        if first.dim() != 3 or first.shape[-1] != codec.ell or reveal.shape != first.shape:
            raise ValueError(
                f"first_value {tuple(first.shape)} and reveal_step {tuple(reveal.shape)} must both be "
                f"(N, L, ell={codec.ell})"
            )
        if times.dim() != 1 or times.numel() < 2 or not times.is_floating_point():
            raise ValueError(f"times must be a float vector of T + 1 >= 2 values, got {tuple(times.shape)}")
        if first.is_floating_point() or reveal.is_floating_point():
            raise ValueError("first_value and reveal_step must be integer tensors")
        fixed = reveal == 0
        initial = torch.where(fixed, first.long(), torch.full(first.shape, codec.mask, dtype=torch.long))
        if bool(((initial < 0) | (initial > codec.mask)).any()):
            raise ValueError(f"fixed digits outside 0..{codec.mask}")
        if not bool(torch.isfinite(times).all()) or float(times.min()) < 0 or float(times.max()) > 1:
            raise ValueError("times must lie in [0, 1]")
        for name in [*scalars, *dtypes, *none, *tensors]:
            _check_field_name(cls, name)
        traj = cls(codec, times, initial, fixed, "predictions" in tensors)
        n, length, _ = first.shape
        steps = traj.steps
        for name, value in scalars.items():
            if name == "steps" and value != steps:
                raise ValueError(f"steps = {value} but times has {steps + 1} entries")
            setattr(traj, name, value)
        for name, value in dtypes.items():
            dtype = getattr(torch, str(value), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"{name}: unknown dtype {value!r}")
            setattr(traj, name, dtype)
        for name in none:
            setattr(traj, name, None)
        expected = {
            "first_value": ((n, length, codec.ell), traj.digit_dtype),
            "reveal_step": ((n, length, codec.ell), traj.step_dtype),
            "revealed": ((steps, n), None),
            "idle": ((steps, n), torch.bool),
            "called": ((steps, n), None),
            "predictions": ((steps, n, length), None),
            "reveal_confidence": ((n, length, codec.ell), None),
        }
        for name, tensor in tensors.items():
            if name.startswith("events."):
                continue
            if name in expected:
                shape, dtype = expected[name]
                if tuple(tensor.shape) != shape or (dtype is not None and tensor.dtype != dtype):
                    want = f"{shape} {dtype}" if dtype is not None else str(shape)
                    raise ValueError(f"{name} is {tuple(tensor.shape)} {tensor.dtype}, expected {want}")
            setattr(traj, name, tensor.clone())
        if not isinstance(traj.steps_done, int) or not 0 <= traj.steps_done <= steps:
            raise ValueError(f"steps_done must be in 0..{steps}, got {traj.steps_done!r}")
        if bool(((traj.first_value < 0) | (traj.first_value > codec.mask)).any()):
            raise ValueError(f"digits outside 0..{codec.mask}")
        bad_step = (traj.reveal_step < 0) | (traj.reveal_step > traj.steps_done)
        if bool((bad_step & (traj.reveal_step != traj.not_revealed)).any()):
            raise ValueError(f"reveal steps outside 0..{traj.steps_done} (steps done)")
        for name in ("revealed", "called", "predictions"):
            value = getattr(traj, name, None)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                raise ValueError(f"{name} must be an integer tensor, got {value.dtype}")
        if traj.predictions is not None and traj.predictions.numel():
            low, high = int(traj.predictions.min()), int(traj.predictions.max())
            if low < -1 or high >= codec.num_classes:
                raise ValueError(f"predictions outside -1..{codec.num_classes - 1}")
        traj.events = _events_from_tensors(tensors, n * length * codec.ell, traj.steps_done, codec.mask)
        return traj

    # -- selecting samples -----------------------------------------------------------------------

    def subset(self, samples: list[int]) -> Trajectory:
        """The record of only these samples (in this order), e.g. one sample to branch from."""
        n, length, ell = self.shape
        if not samples or any(not 0 <= i < n for i in samples):
            raise ValueError(f"sample indices must be in 0..{n - 1}, got {samples}")
        index = torch.tensor(samples, dtype=torch.long)
        tensors, meta = self.to_tensors()
        per_token = length * ell
        out: dict[str, torch.Tensor] = {}
        for name, tensor in tensors.items():
            if name.startswith("events."):
                continue
            if tensor.dim() >= 2 and tuple(tensor.shape[:2]) == (n, length):
                out[name] = tensor[index]  # per-sample fields: (N, L, ...)
            elif tensor.dim() >= 2 and tuple(tensor.shape[:2]) == (self.steps, n):
                out[name] = tensor[:, index]  # per-step, per-sample fields: (T, N, ...)
            else:
                out[name] = tensor
        events = []
        new_row = {int(old): new for new, old in enumerate(samples)}
        for step, flat, value in self.events:
            rows = flat // per_token
            keep = torch.tensor([int(r) in new_row for r in rows], dtype=torch.bool)
            if bool(keep.any()):
                mapped = torch.tensor([new_row[int(r)] for r in rows[keep]], dtype=flat.dtype)
                events.append((step, mapped * per_token + flat[keep] % per_token, value[keep]))
        out.update(_events_to_tensors(events, self.digit_dtype))
        return Trajectory.from_tensors(out, meta)


def _check_field_name(cls: type, name: str) -> None:
    """A stored field may not shadow a method or property, nor be private."""
    field = name.split(".", 1)[0]
    if not field.isidentifier() or field.startswith("_") or hasattr(cls, field) or field == "codec":
        raise ValueError(f"the trajectory record has a field this build cannot hold: {name!r}")


RECORD_VERSION = 1  # version of the to_tensors layout; from_tensors reads 1..RECORD_VERSION


def _events_to_tensors(
    events: list[tuple[int, torch.Tensor, torch.Tensor]], digit_dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    steps = torch.tensor([int(s) for s, _, _ in events], dtype=torch.int64)
    counts = torch.tensor([int(i.numel()) for _, i, _ in events], dtype=torch.int64)
    index = torch.cat([i.long() for _, i, _ in events]) if events else torch.zeros(0, dtype=torch.int64)
    value = torch.cat([v for _, _, v in events]) if events else torch.zeros(0, dtype=digit_dtype)
    return {
        "events.step": steps,
        "events.count": counts,
        "events.index": index,
        "events.value": value.to(digit_dtype),
    }


def _events_from_tensors(
    tensors: dict[str, torch.Tensor], size: int, steps_done: int, mask: int
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    names = ("events.step", "events.count", "events.index", "events.value")
    if not any(name in tensors for name in names):
        return []
    if not all(name in tensors for name in names):
        raise ValueError(f"corrector events need all of {', '.join(names)}")
    step, count, index, value = (tensors[name] for name in names)
    if any(t.dim() != 1 or t.is_floating_point() for t in (step, count, index, value)):
        raise ValueError("corrector events must be integer vectors")
    if step.shape != count.shape or index.shape != value.shape or int(count.sum()) != index.numel():
        raise ValueError("corrector events: step/count and index/value lengths do not match")
    if bool((count < 0).any()) or bool(((step < 1) | (step > steps_done)).any()):
        raise ValueError(f"corrector events outside steps 1..{steps_done}")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ValueError(f"corrector event indices outside 0..{size - 1}")
    if value.numel() and (int(value.min()) < 0 or int(value.max()) >= mask):
        raise ValueError(f"corrector event values outside 0..{mask - 1}")
    if bool((step[1:] < step[:-1]).any()):
        raise ValueError("corrector events must be in step order")
    out = []
    start = 0
    for s, c in zip(step.tolist(), count.tolist(), strict=True):
        out.append((int(s), index[start : start + c].clone(), value[start : start + c].clone()))
        start += c
    return out
