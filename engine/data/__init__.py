"""Data sets for training and evaluation: image folders and arrays, text files, in-memory arrays.

Everything is decoded once into a :class:`TokenData` (tokens (N, L) plus a deterministic
train/validation split by source file); :func:`preflight` reports what a path holds before any
training. It imports only :mod:`engine.config` and :mod:`engine.tokenizer` (and Pillow/numpy);
training and the CLI build on it.
"""

from engine.data.dataset import TokenData, array_dataset, split_indices
from engine.data.files import IMAGE_EXTENSIONS, TEXT_EXTENSIONS, DataError, Skipped, looks_like_text
from engine.data.images import BACKGROUNDS, DEFAULT_BACKGROUND, parse_background, quantise
from engine.data.options import DataOptions
from engine.data.preflight import load_data, preflight
from engine.data.report import PreflightReport, printable, split_padding
from engine.data.text import PAD_BYTE, TEXT_MODES
from engine.data.vocabulary import learn_vocabulary

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_BACKGROUND",
    "IMAGE_EXTENSIONS",
    "PAD_BYTE",
    "TEXT_EXTENSIONS",
    "TEXT_MODES",
    "DataError",
    "DataOptions",
    "PreflightReport",
    "Skipped",
    "TokenData",
    "array_dataset",
    "load_data",
    "learn_vocabulary",
    "looks_like_text",
    "parse_background",
    "preflight",
    "split_padding",
    "printable",
    "quantise",
    "split_indices",
]
