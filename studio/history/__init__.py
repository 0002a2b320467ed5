"""Results: what was generated, in memory and on disk, and the History dock that lists them.

:mod:`~studio.history.entries` holds the history itself (``History`` of ``Entry``, pure data),
:mod:`~studio.history.store` writes and reads outputs in the data folder (trajectory, PNG with
settings or text, JSON sidecar; exports PNG / GIF / WebP / text), :mod:`~studio.history.tree` is the
dock (a tree of entries with thumbnails, plus the outputs of earlier sessions) and
:mod:`~studio.history.gallery` the Gallery tab (every sample of every output, metadata, branch,
export, delete with undo). This package may import the
shared top-level modules (e.g. :mod:`studio.render`); it knows nothing of the workspace, the
Train tab or the main window, which import it.
"""
