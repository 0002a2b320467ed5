"""Benchmarks: measurements behind the README's tables, each returning a plain dict with its machine.

``sample`` (sampler overhead, NFE, idle steps), ``matmul`` (this machine's peak), ``train``
(training throughput and MFU), ``quality`` (sample quality at equal NFE) and ``objectives``
(training objectives compared), with ``metrics`` (the digit classifier, Fréchet distance, text
measures) and ``report`` (machine description, plain-text tables). May import every engine package
but the CLI; the CLI (:mod:`engine.cli.bench`) runs and prints them. The GUI benchmark lives in
:mod:`studio.bench` because it needs Qt.
"""
