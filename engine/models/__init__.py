"""Networks: the partial-token embedding and the transformer backbone (``PrimeModel``).

It imports :mod:`engine.config` and :mod:`engine.prime`; it knows nothing of files, sampling or training.
"""

from engine.models.transformer import PrimeModel

__all__ = ["PrimeModel"]
