"""The model library panel.

Bundled and user models with their cards; import (dialog or drag-and-drop
of a ``.safetensors``), remove (after a confirmation, into the trash of the data folder), restore
from the trash, reveal in the file manager, and "New random model" when there is nothing to load
yet.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import enginelink

PATH_ROLE = Qt.ItemDataRole.UserRole
BUNDLED_ROLE = Qt.ItemDataRole.UserRole + 1
NAME_ROLE = Qt.ItemDataRole.UserRole + 2
ELL_ROLE = Qt.ItemDataRole.UserRole + 3


def _card_value(value: object) -> str:
    """A card field as short text: nested objects as "key: value" lines, no hashes or long lists."""
    if isinstance(value, dict):
        lines = []
        for k, v in list(value.items())[:64]:
            if k in ("fingerprint", "sources") or isinstance(v, (dict, list)) and len(_json(v)) > 80:
                continue
            lines.append(f"{str(k)[:80]}: {_json(v) if isinstance(v, (dict, list)) else str(v)[:200]}")
        return "; ".join(lines)[:400]
    if isinstance(value, float):
        return f"{value:.4g}"
    text = _json(value) if isinstance(value, list) else str(value)
    return text[:300]


def _json(value: object) -> str:
    """Compact JSON of a card value (any value a file may hold: never raises)."""
    try:
        return json.dumps(value, default=str)[:2000]
    except (ValueError, TypeError, RecursionError):
        return "(unreadable value)"


def card_html(
    name: str,
    config: dict | None,
    card: dict | None,
    bundled: bool | None,
    error: str | None = None,
    source: str | None = None,
) -> str:
    """A model card as HTML: geometry, codec, backbone and the card's own fields.

    ``source`` says where the model comes from; by default "bundled", "your library", or for
    ``bundled`` None "in memory only" (a new random model).
    """
    name = html.escape(str(name))
    if error:
        return (
            f"<b>{name}</b><br><span style='color:#c0392b'>Cannot be used: {html.escape(str(error))}</span>"
        )
    cfg = config or {}
    source = source or (
        "in memory only (not saved)" if bundled is None else "bundled" if bundled else "your library"
    )
    rows = [("Source", source), ("Modality", cfg.get("modality", "?"))]
    if cfg.get("modality") == "image":
        rows.append(("Size", f"{cfg.get('height')}\u00d7{cfg.get('width')}\u00d7{cfg.get('channels')}"))
    else:
        rows.append(("Length", f"{cfg.get('seq_len')} bytes"))
    ell = cfg.get("ell", 1)
    rows.append(("Digits", f"\u2113={ell}" + (" (MDM baseline)" if ell == 1 else " (Prime)")))
    rows.append(("Backbone", f"{cfg.get('n_layers')}\u00d7{cfg.get('d_model')}, {cfg.get('n_heads')} heads"))
    for key, value in sorted((card or {}).items(), key=lambda kv: str(kv[0])):
        rows.append((str(key)[:80].replace("_", " "), _card_value(value)))
    # everything from a file is text, never markup: a key like <img src=...> is shown, not rendered
    cell = "<tr><td valign='top' style='color:#888'>{}</td><td>&nbsp;{}</td></tr>"
    table = "".join(cell.format(html.escape(str(k)), html.escape(str(v))) for k, v in rows)
    return f"<b>{name}</b><table>{table}</table>"


class LibraryPanel(QWidget):
    """Lists ``engine.list_models()``; double-click (or Load) loads a model."""

    load_requested = Signal(str)  # path
    random_requested = Signal(str)  # modality
    import_requested = Signal()
    files_dropped = Signal(list)  # paths (.safetensors imports, .png restores)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._show_card)
        self.list.itemDoubleClicked.connect(lambda item: self._load(item))
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.load = QToolButton(text="Load")
        self.load.clicked.connect(lambda: self._load(self.list.currentItem()))
        self.import_ = QToolButton(text="Import")
        self.import_.setToolTip("Copy a .safetensors model into your library (or drop one here)")
        self.import_.clicked.connect(self.import_requested)
        self.remove = QToolButton(text="Remove")
        self.remove.clicked.connect(self._remove)
        self.restore_menu = QMenu(self)
        self.restore_menu.aboutToShow.connect(self._fill_restore_menu)
        self.restore = QToolButton(text="Restore")
        self.restore.setToolTip("Put a removed model back from the trash")
        self.restore.setMenu(self.restore_menu)
        self.restore.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.reveal = QToolButton(text="Reveal")
        self.reveal.setToolTip("Show the model file in the file manager")
        self.reveal.clicked.connect(self._reveal)
        self.random_kind = QComboBox()
        self.random_kind.addItem("image", "image")
        self.random_kind.addItem("text", "text")
        self.random = QPushButton("New random")
        self.random.setToolTip("An UNTRAINED model with random weights, to try the studio")
        self.random.clicked.connect(lambda: self.random_requested.emit(self.random_kind.currentData()))
        self.empty = QLabel(
            "No models yet: import a .safetensors file, drop one here, "
            "or start with an untrained random model."
        )
        self.empty.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        row1 = QHBoxLayout()
        for b in (self.load, self.import_, self.remove, self.restore, self.reveal):
            row1.addWidget(b)
        row2 = QHBoxLayout()
        row2.addWidget(self.random, 1)
        row2.addWidget(self.random_kind)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 2)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.card, 3)
        layout.addWidget(self.status)
        self._cards: dict[str, str] = {}
        self.trash: list = []  # eng.TrashEntry, newest removal first (refresh reads it)

    def refresh(self) -> None:
        """Re-read the library folders."""
        current = self.list.currentItem().data(PATH_ROLE) if self.list.currentItem() else None
        self.list.clear()
        self._cards.clear()
        try:
            entries = enginelink.eng.list_models()
        except Exception as exc:  # noqa: BLE001 - the library itself may be broken; show why
            self.status.setText(f"Cannot read the library: {exc}")
            entries = []
        for e in entries:
            info = e.info
            cfg = info.config.to_dict() if info is not None else None
            card = info.card if info is not None else None
            label = f"{e.name}  \u00b7  {'bundled' if e.bundled else 'yours'}"
            if cfg:
                label += f"  \u00b7  {cfg['modality']} \u2113={cfg['ell']}"
            item = QListWidgetItem(label)
            item.setData(PATH_ROLE, str(e.path))
            item.setData(BUNDLED_ROLE, bool(e.bundled))
            item.setData(NAME_ROLE, e.name)
            item.setData(ELL_ROLE, int(cfg["ell"]) if cfg else 0)  # 0: unusable
            if e.error:
                item.setForeground(Qt.GlobalColor.red)
            self._cards[str(e.path)] = card_html(e.name, cfg, card, e.bundled, e.error)
            self.list.addItem(item)
            if str(e.path) == current:
                self.list.setCurrentItem(item)
        self.empty.setVisible(not entries)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        try:
            self.trash = enginelink.eng.list_trash()
        except OSError as exc:
            self.trash = []
            self.status.setText(f"Cannot read the trash: {exc}")
        self.restore.setEnabled(bool(self.trash))

    def first_usable(self) -> str | None:
        """Path of the model to open first (None when there is none).

        A valid Prime model (ell > 1) if any, bundled first; else the first valid one.
        """
        usable = [self.list.item(i) for i in range(self.list.count()) if self.list.item(i).data(ELL_ROLE)]
        prime = [item for item in usable if item.data(ELL_ROLE) > 1]
        return (prime or usable)[0].data(PATH_ROLE) if usable else None

    def select_path(self, path: str) -> bool:
        """Select the library entry of a model file (its card shows); False if not listed."""
        if not path:
            return False
        target = str(Path(path).resolve())
        for i in range(self.list.count()):
            if str(Path(self.list.item(i).data(PATH_ROLE)).resolve()) == target:
                self.list.setCurrentRow(i)
                return True
        return False

    def show_loaded(self, html: str) -> None:
        """Show the card of a model that is not in the library (e.g. a random one)."""
        self.card.setHtml(html)

    def _show_card(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.card.setHtml(self._cards.get(item.data(PATH_ROLE), ""))
        bundled = bool(item and item.data(BUNDLED_ROLE))
        self.remove.setEnabled(item is not None and not bundled)
        self.remove.setToolTip(
            "Bundled models cannot be removed" if bundled else "Move to the trash (Restore brings it back)"
        )
        self.load.setEnabled(item is not None)
        self.reveal.setEnabled(item is not None)

    def _load(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.load_requested.emit(item.data(PATH_ROLE))

    def confirm_remove(self, name: str) -> bool:
        """Ask before removing a model; True = move it to the trash."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Remove model")
        box.setText(f"Move \u201c{name}\u201d from your library to the trash?")
        box.setInformativeText(
            f"Nothing is deleted: Restore (in this panel) or \u2018prime restore {name}\u2019 brings it back."
        )
        remove = box.addButton("Move to trash", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is remove

    def _remove(self) -> None:
        item = self.list.currentItem()
        if item is None or item.data(BUNDLED_ROLE):
            return
        name = item.data(NAME_ROLE)
        if not self.confirm_remove(name):
            return
        try:
            enginelink.eng.remove_model(name)
            self.status.setText(f"Moved {name} to the trash; Restore brings it back.")
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.status.setText(f"Cannot remove: {exc}")
        self.refresh()

    def _fill_restore_menu(self) -> None:
        self.restore_menu.clear()
        for entry in self.trash:
            action = self.restore_menu.addAction(f"{entry.name}  \u00b7  removed {entry.removed}")
            action.triggered.connect(lambda _checked=False, n=entry.name: self.restore_model(n))
        if not self.trash:
            self.restore_menu.addAction("The trash is empty").setEnabled(False)

    def restore_model(self, name: str) -> bool:
        """Put the newest removed model called ``name`` back into the library and select it."""
        try:
            path = enginelink.eng.restore_model(name)
        except Exception as exc:  # noqa: BLE001 - shown to the user (e.g. the name is taken now)
            self.status.setText(f"Cannot restore: {exc}")
            self.refresh()
            return False
        self.refresh()
        self.select_path(str(path))
        self.status.setText(f"Restored {name}")
        return True

    def _reveal(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(item.data(PATH_ROLE)).parent)))

    # drag and drop ------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Accept dropped files."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Hand dropped files to the window (import / restore settings)."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths)
            event.acceptProposedAction()
