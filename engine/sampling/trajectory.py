"""The denoising history of a batch of samples in O(sub-tokens) memory.

Without a corrector every digit goes from the mask to its final value exactly once, so the whole
history is the value each digit took and the step at which it was revealed. With a corrector,
later changes are recorded as (step, index, value) events. Any step is rebuilt in O(N).
"""

from __future__ import annotations

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
        child.steps_done = step
        return child
