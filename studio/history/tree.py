"""The History dock.

A tree of outputs (branches under their parent) with thumbnails, and actions: compare two, export
PNG / GIF / WebP / text, open the outputs folder. Outputs of earlier sessions are listed under
"Earlier sessions"; selecting one reopens it fully (steps, predictions, branching) when its steps
were recorded, and restores its settings either way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.history import store
from studio.history.entries import Entry
from studio.render import num

ID_ROLE = Qt.ItemDataRole.UserRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
DELETED_ROLE = Qt.ItemDataRole.UserRole + 2
MAX_SAVED = 200


class HistoryPanel(QWidget):
    """Tree of :class:`~studio.history.entries.Entry` with thumbnails."""

    selected = Signal(int)  # entry id
    compare_requested = Signal(int, int)
    export_requested = Signal(int, str)  # entry id, "png" | "gif" | "text"
    open_folder_requested = Signal()
    saved_selected = Signal(str)  # path of an output saved in an earlier session
    entry_added = Signal(int)  # entry id, after it is listed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Output", "Model", "Seed", "NFE", "Idle", "Time"])
        self.tree.setIconSize(QSize(40, 40))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(False)
        self.tree.itemSelectionChanged.connect(self._selection)
        self.tree.setColumnWidth(0, 150)
        self.items: dict[int, QTreeWidgetItem] = {}
        # opener(path): reopen a saved output as an entry (set by the session; for compare / export)
        self.opener: Callable[[str], object] | None = None
        self.compare = QPushButton("Compare")
        self.compare.setToolTip("Select two outputs (Ctrl+click) and compare them side by side")
        self.compare.clicked.connect(self._compare)
        self.export = QToolButton(text="Export")
        self.export.setToolTip("Export the selected output: PNG with settings, GIF of the denoising, text")
        self.export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export)
        menu.addAction("PNG (settings in text chunks)\u2026", lambda: self._export("png"))
        menu.addAction("Animated GIF of the denoising\u2026", lambda: self._export("gif"))
        menu.addAction("Animated WebP of the denoising\u2026", lambda: self._export("webp"))
        menu.addAction("Text file\u2026", lambda: self._export("text"))
        self.export.setMenu(menu)
        self.folder = QPushButton("Folder")
        self.folder.setToolTip("Open the folder where every output is saved")
        self.folder.clicked.connect(self.open_folder_requested)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for b in (self.compare, self.export, self.folder):
            bar.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree, 1)
        layout.addLayout(bar)

    def add(self, entry: Entry, thumbnail: QImage | None = None, select: bool = True) -> None:
        """Add an entry under its parent (or as a root), selected unless ``select`` is False."""
        s = entry.stats()
        item = QTreeWidgetItem(
            [
                entry.title(),
                entry.model.name,
                str(entry.settings.get("seed", "")),
                f"{num(s['nfe'])}",
                f"{num(s['idle'])}",
                f"{s['seconds']:.2f}s",
            ]
        )
        item.setData(0, ID_ROLE, entry.id)
        item.setToolTip(
            0, "\n".join(f"{k}: {v}" for k, v in sorted(entry.settings.items()) if v not in ("", None))
        )
        if thumbnail is not None and not thumbnail.isNull():
            pix = QPixmap.fromImage(
                thumbnail.scaled(
                    40, 40, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
                )
            )
            item.setIcon(0, QIcon(pix))
        parent = self.items.get(entry.parent) if entry.parent is not None else None
        if parent is not None:
            parent.addChild(item)
            parent.setExpanded(True)
        else:
            self.tree.addTopLevelItem(item)
        self.items[entry.id] = item
        if select:
            self.tree.clearSelection()
            item.setSelected(True)
            self.tree.setCurrentItem(item)
        self.entry_added.emit(entry.id)

    def load_saved(self, folder: Path) -> int:
        """List outputs saved in earlier sessions (newest first) under "Earlier sessions".

        Selecting one reopens it (when its steps were recorded) and restores its settings.
        """
        outputs = store.list_outputs(folder)
        if not outputs:
            return 0
        group = QTreeWidgetItem([f"Earlier sessions ({min(len(outputs), MAX_SAVED)})"])
        group.setToolTip(0, f"Saved in {folder}; select one to reopen it (and restore its settings)")
        self.tree.addTopLevelItem(group)
        for saved in outputs[:MAX_SAVED]:
            settings = saved.settings()
            item = QTreeWidgetItem(
                [saved.name, str(settings.get("model", "")), str(settings.get("seed", ""))]
            )
            item.setData(0, PATH_ROLE, str(saved.main))
            steps = "every step recorded" if saved.has_steps else "no recorded steps (settings only)"
            item.setToolTip(0, f"{saved.main}\n{steps}")
            if not saved.has_steps:
                item.setForeground(0, self.palette().placeholderText())
            if saved.is_image:
                image = QImage(str(saved.main))
                if not image.isNull():
                    thumb = image.scaled(
                        40, 40, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
                    )
                    item.setIcon(0, QIcon(QPixmap.fromImage(thumb)))
            group.addChild(item)
        return len(outputs)

    def attach(self, entry: Entry, main: Path) -> None:
        """A saved output was reopened as ``entry``: its item now selects that entry."""
        item = self._saved_item(main)
        if item is None:
            self.add(entry, select=False)
            return
        item.setData(0, ID_ROLE, entry.id)
        item.setText(3, num(entry.stats()["nfe"]))
        item.setText(4, num(entry.stats()["idle"]))
        self.items[entry.id] = item
        self.entry_added.emit(entry.id)

    def mark_deleted(self, main: Path, entry_id: int | None, deleted: bool) -> None:
        """Strike out (or restore) the item of a deleted output; deleted saved items do nothing."""
        items = [self._saved_item(main), self.items.get(entry_id) if entry_id is not None else None]
        for item in {id(i): i for i in items if i is not None}.values():
            font = QFont(item.font(0))
            font.setStrikeOut(deleted)
            item.setFont(0, font)
            item.setData(0, DELETED_ROLE, deleted)

    def _saved_item(self, main: Path) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                child = group.child(j)
                if child.data(0, PATH_ROLE) == str(main):
                    return child
        return None

    def select(self, entry_id: int) -> None:
        """Select an entry programmatically."""
        item = self.items.get(entry_id)
        if item is not None:
            self.tree.clearSelection()
            item.setSelected(True)
            self.tree.setCurrentItem(item)

    def selected_ids(self) -> list[int]:
        """Ids of the selected entries."""
        return [int(i.data(0, ID_ROLE)) for i in self.tree.selectedItems() if i.data(0, ID_ROLE) is not None]

    def current_id(self) -> int | None:
        """Id of the current entry."""
        item = self.tree.currentItem()
        return int(item.data(0, ID_ROLE)) if item is not None and item.data(0, ID_ROLE) is not None else None

    def _selection(self) -> None:
        items = self.tree.selectedItems()
        if len(items) == 1 and items[0].data(0, DELETED_ROLE):
            return
        if len(items) == 1 and items[0].data(0, PATH_ROLE) and items[0].data(0, ID_ROLE) is None:
            self.saved_selected.emit(items[0].data(0, PATH_ROLE))
            return
        ids = self.selected_ids()
        if len(ids) == 1:
            self.selected.emit(ids[0])

    def _open_unopened(self, items: list[QTreeWidgetItem]) -> None:
        """Reopen saved outputs among ``items`` that are not entries yet (see :attr:`opener`)."""
        for item in items:
            if item.data(0, ID_ROLE) is None and item.data(0, PATH_ROLE) and not item.data(0, DELETED_ROLE):
                if self.opener is not None:
                    self.opener(item.data(0, PATH_ROLE))

    def _compare(self) -> None:
        self._open_unopened(self.tree.selectedItems())
        ids = self.selected_ids()
        if len(ids) == 2:
            self.compare_requested.emit(ids[0], ids[1])

    def _export(self, kind: str) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self._open_unopened([item])
        current = self.current_id()
        if current is not None:
            self.export_requested.emit(current, kind)
