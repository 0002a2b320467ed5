"""The Train tab: train or fine-tune a model from a folder of images or a text file.

:mod:`~studio.train.panel` is the tab (it registers itself and the ``train`` self-test with
:mod:`studio.panels` when imported; the main window imports it by name), built from
:mod:`~studio.train.form` (settings), :mod:`~studio.train.view` with :mod:`~studio.train.chart`
(the live run) and three mixins, :mod:`~studio.train.data` (data checks, size and speed),
:mod:`~studio.train.control` (run control, sharing the engine thread) and
:mod:`~studio.train.recover` (resuming interrupted runs); :mod:`~studio.train.runs` keeps run
records and the engine-thread work, :mod:`~studio.train.selftest` the self-test script. This
package may import the shared top-level modules and :mod:`studio.library`; it reaches the window
only through the object the tab factory is given, never by importing
:mod:`studio.mainwindow`, :mod:`studio.workspace` or :mod:`studio.history`.
"""
