"""Models: partial-token embedding and backbones."""

from engine.models.transformer import PrimeModel

__all__ = ["PrimeModel"]
