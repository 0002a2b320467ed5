"""Files the engine reads and writes: model files, the model library, media and token conversion.

``modelfile`` (the safetensors model format: save, validate, load; no pickle), ``atomic`` (every
write goes through it: temporary file, fsync, rename; a full disk is a clear error), ``library``
(bundled and user models by name), ``media`` (PNG/GIF/WebP output with settings chunks),
``trajectory`` (a sampling run's full record as safetensors) and ``convert`` (images and text to
and from token ids). It imports :mod:`engine.config`, :mod:`engine.prime`, :mod:`engine.models` and
:mod:`engine.sampling`; training, the benchmarks and the CLI build on it.
"""
