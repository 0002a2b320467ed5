"""Prime Studio, the PySide6 desktop front end of the engine, laid out in layers.

At the bottom are the shared top-level modules, which import no studio package:
:mod:`~studio.enginelink` (the studio's only door to ``engine``, public top-level names only),
:mod:`~studio.bridge` (the only owner of the engine thread), :mod:`~studio.settings`,
:mod:`~studio.panels` (registries that let tabs and self-tests plug in), :mod:`~studio.render`
(pure digit states to pictures and text), :mod:`~studio.dialogs`, :mod:`~studio.wheelguard`
(the mouse wheel edits a spin or combo box only while it has focus), and the two small docks
:mod:`~studio.library` (Models) and :mod:`~studio.queue` (Queue). Above them are the feature
packages: :mod:`studio.history` (results and the History dock), :mod:`studio.workspace` (the
Generate and Compare tabs and the session that drives them) and :mod:`studio.train` (the Train
tab, loaded by name through :mod:`~studio.panels`). At the top, :mod:`~studio.mainwindow`
assembles the window, :mod:`~studio.app` starts the application and :mod:`~studio.bench`
measures it; nothing imports them but the one above (``app`` and the benchmark, which drives the
real window, import ``mainwindow``). Imports point down only; ``tests/test_layout.py`` checks that
there are no cycles.
"""
