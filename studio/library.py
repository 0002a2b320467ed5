"""The model library panel.

Bundled and user models with their cards; import (dialog or drag-and-drop
of a ``.safetensors``), remove, reveal in the file manager, and "New random model" when there is
nothing to load yet.
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
        for k, v in value.items():
            if k in ("fingerprint", "sources") or isinstance(v, (dict, list)) and len(json.dumps(v)) > 80:
                continue
            lines.append(f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
        return "; ".join(lines)[:400]
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, list) else str(value)
    return text[:300]


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
    if error:
        return f"<b>{name}</b><br><span style='color:#c0392b'>Cannot be used: {html.escape(error)}</span>"
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
    for key, value in sorted((card or {}).items()):
        rows.append((key.replace("_", " "), html.escape(_card_value(value))))
    table = "".join(
        f"<tr><td valign='top' style='color:#888'>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in rows
    )
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
        for b in (self.load, self.import_, self.remove, self.reveal):
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
        self.remove.setToolTip("Bundled models cannot be removed" if bundled else "Delete from your library")
        self.load.setEnabled(item is not None)
        self.reveal.setEnabled(item is not None)

    def _load(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.load_requested.emit(item.data(PATH_ROLE))

    def _remove(self) -> None:
        item = self.list.currentItem()
        if item is None or item.data(BUNDLED_ROLE):
            return
        try:
            enginelink.eng.remove_model(item.data(NAME_ROLE))
            self.status.setText(f"Removed {item.data(NAME_ROLE)}")
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.status.setText(f"Cannot remove: {exc}")
        self.refresh()

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
