"""Sub-token codec: tokens x in {0..C-1} <-> ell base-b digits, most significant first.

The mask symbol is ``b`` itself, so a digit takes b + 1 values. ell = 1 is plain MDM.
An optional permutation (Prime-v2 index shuffling) is applied to token ids before encoding.
"""

from __future__ import annotations

import torch

from engine.config import ModelConfig, smallest_base


class Codec:
    """Encode tokens to digits and back for a given C and ell."""

    def __init__(self, num_classes: int, ell: int, permutation: tuple[int, ...] | None = None) -> None:
        self.num_classes = int(num_classes)
        self.ell = int(ell)
        self.base = smallest_base(self.num_classes, self.ell)
        self.mask = self.base
        if permutation is not None:
            perm = torch.tensor(permutation, dtype=torch.long)
            if perm.shape != (self.num_classes,) or not torch.equal(
                perm.sort().values, torch.arange(num_classes)
            ):
                raise ValueError(f"permutation must be a permutation of range({num_classes})")
            self.permutation: torch.Tensor | None = perm
            self.inverse_permutation: torch.Tensor | None = torch.argsort(perm)
        else:
            self.permutation = None
            self.inverse_permutation = None
        # place values b^(ell-j), j = 1..ell: (ell,)
        self.place = torch.tensor(
            [self.base ** (self.ell - 1 - j) for j in range(self.ell)], dtype=torch.long
        )
        # digit_table[x] = digits of token x (in code space, i.e. after the permutation): (C, ell)
        self.digit_table = self._digits_of_codes(torch.arange(self.num_classes))
        self.code_of_token = (
            self.permutation if self.permutation is not None else torch.arange(self.num_classes)
        )
        # digits of every *token id* (used by the filter, whose logits are indexed by token id): (C, ell)
        self.token_digits = self.digit_table[self.code_of_token]

    @classmethod
    def from_config(cls, config: ModelConfig) -> Codec:
        """The codec a model config describes."""
        return cls(config.num_classes, config.ell, config.permutation)

    def _digits_of_codes(self, codes: torch.Tensor) -> torch.Tensor:
        # (..., ) -> (..., ell)
        return (codes.unsqueeze(-1) // self.place.to(codes.device)) % self.base

    def encode(self, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Tokens (...) in 0..C-1 -> digits (..., ell) in 0..b-1 (``check=False`` skips the range check)."""
        x = x.long()
        if check and x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_classes):
            raise ValueError(f"tokens must be in 0..{self.num_classes - 1}")
        if self.permutation is not None:
            x = self.permutation.to(x.device)[x]
        return self._digits_of_codes(x)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Digits (..., ell) -> tokens (...); -1 where any digit is masked or the code is >= C."""
        y = y.long()
        masked = (y == self.mask).any(-1)
        code = (y.clamp(max=self.base - 1) * self.place.to(y.device)).sum(-1)
        invalid = masked | (code >= self.num_classes)
        code = code.clamp(max=self.num_classes - 1)
        if self.inverse_permutation is not None:
            code = self.inverse_permutation.to(y.device)[code]
        return torch.where(invalid, torch.full_like(code, -1), code)

    def value_range(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lowest and highest code consistent with the visible digits (..., ell) -> (...), (...).

        With the most significant digits visible first this is a contiguous range; in general
        masked digits span 0..b-1. Codes are clipped to C - 1 (only meaningful without permutation).
        """
        place = self.place.to(y.device)
        masked = y == self.mask
        low = (torch.where(masked, torch.zeros_like(y), y) * place).sum(-1)
        high = (torch.where(masked, torch.full_like(y, self.base - 1), y) * place).sum(-1)
        return low.clamp(max=self.num_classes - 1), high.clamp(max=self.num_classes - 1)

    def __repr__(self) -> str:
        return f"Codec(C={self.num_classes}, ell={self.ell}, base={self.base})"
