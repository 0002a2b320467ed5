"""The history / gallery panel.

A tree of outputs (branches under their parent) with thumbnails,
and actions: compare two, export PNG / GIF / text, open the outputs folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
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

from studio.history.entries import Entry
from studio.render import num


def _sidecar(path: Path) -> dict:
    side = path.with_name(path.name + ".json")
    try:
        return dict(json.loads(side.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


ID_ROLE = Qt.ItemDataRole.UserRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_SAVED = 200


class HistoryPanel(QWidget):
    """Tree of :class:`~studio.history.entries.Entry` with thumbnails."""

    selected = Signal(int)  # entry id
    compare_requested = Signal(int, int)
    export_requested = Signal(int, str)  # entry id, "png" | "gif" | "text"
    open_folder_requested = Signal()
    saved_selected = Signal(str)  # path of an output saved in an earlier session

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
        self.compare = QPushButton("Compare")
        self.compare.setToolTip("Select two outputs (Ctrl+click) and compare them side by side")
        self.compare.clicked.connect(self._compare)
        self.export = QToolButton(text="Export")
        self.export.setToolTip("Export the selected output: PNG with settings, GIF of the denoising, text")
        self.export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export)
        menu.addAction("PNG (settings in text chunks)\u2026", lambda: self._export("png"))
        menu.addAction("Animated GIF of the denoising\u2026", lambda: self._export("gif"))
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

    def load_saved(self, folder: Path) -> int:
        """List outputs saved in earlier sessions (newest first) under "Earlier sessions".

        They have no trajectory any more; selecting one restores its settings.
        """
        files = sorted((p for p in folder.glob("*") if p.suffix in (".png", ".txt")), reverse=True)
        if not files:
            return 0
        group = QTreeWidgetItem([f"Earlier sessions ({min(len(files), MAX_SAVED)})"])
        group.setToolTip(0, f"Saved in {folder}; select one to restore its settings")
        self.tree.addTopLevelItem(group)
        for path in files[:MAX_SAVED]:
            settings = _sidecar(path)
            item = QTreeWidgetItem([path.stem, str(settings.get("model", "")), str(settings.get("seed", ""))])
            item.setData(0, PATH_ROLE, str(path))
            item.setToolTip(0, str(path))
            if path.suffix == ".png":
                image = QImage(str(path))
                if not image.isNull():
                    thumb = image.scaled(
                        40, 40, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
                    )
                    item.setIcon(0, QIcon(QPixmap.fromImage(thumb)))
            group.addChild(item)
        return len(files)

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
        if len(items) == 1 and items[0].data(0, PATH_ROLE):
            self.saved_selected.emit(items[0].data(0, PATH_ROLE))
            return
        ids = self.selected_ids()
        if len(ids) == 1:
            self.selected.emit(ids[0])

    def _compare(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 2:
            self.compare_requested.emit(ids[0], ids[1])

    def _export(self, kind: str) -> None:
        current = self.current_id()
        if current is not None:
            self.export_requested.emit(current, kind)
