"""The Generate and Compare tabs: the widgets that show samples and the session that drives them.

Widgets: :mod:`~studio.workspace.generate` (the settings form), :mod:`~studio.workspace.canvas`
(image samples, brush, inpaint / detail), :mod:`~studio.workspace.textview` (text samples),
:mod:`~studio.workspace.timeline` (scrubbing the steps) and :mod:`~studio.workspace.compare`
(A / B side by side). :mod:`~studio.workspace.session` holds the state and async actions (load,
generate, branch, inpaint, show a step) with its mixins :mod:`~studio.workspace.hover` and
:mod:`~studio.workspace.outputs`; it is given the widgets it drives and a small ``Host``
protocol, and does not know the main window. This package may import the shared top-level
modules, :mod:`studio.library` and :mod:`studio.history`; never :mod:`studio.train`,
:mod:`studio.mainwindow` or :mod:`studio.app`.
"""
