"""The model library panel.

Bundled and user models with their cards; import (dialog or drag-and-drop
of a ``.safetensors``), remove (after a confirmation, into the trash of the data folder), restore
from the trash, reveal in the file manager, and "New random model" when there is nothing to load
yet.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
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
from studio.dialogs import reveal

PATH_ROLE = Qt.ItemDataRole.UserRole
BUNDLED_ROLE = Qt.ItemDataRole.UserRole + 1
NAME_ROLE = Qt.ItemDataRole.UserRole + 2
ELL_ROLE = Qt.ItemDataRole.UserRole + 3
LOADED_MARK = "\u25cf "  # before the name of the model in use


# card fields that are internal (hashes, per-file lists) or shown elsewhere on the card
HIDDEN_KEYS = {"fingerprint", "sources", "config", "name"}
MAX_ROWS = 24  # per table: a hostile card cannot make a huge page


def local_time(value: str) -> str | None:
    """An ISO date-time with a zone ("2026-11-27T08:08:12+00:00") in local time, else None."""
    if not isinstance(value, str) or not 16 <= len(value) <= 40 or value[4:5] != "-" or "T" not in value:
        return None
    try:
        when = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # no zone: cannot say which local time it is
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def _scalar(key: str, value: object) -> str:
    """One value as short plain text (escaped by the caller)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "\u2014"}[value]
    if isinstance(value, float):
        if key.endswith("_s") and math.isfinite(value):
            return duration(value)
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return local_time(value) or value[:300]
    return _json(value)[:300]


def _json(value: object) -> str:
    """Compact JSON of a card value (any value a file may hold: never raises)."""
    try:
        return json.dumps(value, default=str)[:2000]
    except (ValueError, TypeError, RecursionError):
        return "(unreadable value)"


def duration(seconds: float) -> str:
    """'45 s', '29 min', '3.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _label(key: object) -> str:
    return str(key)[:80].replace("_", " ")


def _table(value: dict, depth: int = 0) -> str:
    """A nested card object as a small two-column table (escaped); deeper objects inline."""
    rows = []
    for k, v in list(value.items())[: 4 * MAX_ROWS]:
        if str(k) in HIDDEN_KEYS:
            continue
        if isinstance(v, dict):
            if depth >= 1:
                continue  # e.g. the training config: in the file, too long for a card
            inner = _table(v, depth + 1)
            if inner:
                rows.append(f"<tr><td colspan='2' style='color:#888'>{html.escape(_label(k))}</td></tr>")
                rows.append(f"<tr><td></td><td>{inner}</td></tr>")
        else:
            text = _json(v)[:300] if isinstance(v, list) else _scalar(str(k), v)
            rows.append(
                f"<tr><td valign='top' style='color:#888'>{html.escape(_label(k))}</td>"
                f"<td>&nbsp;{html.escape(text)}</td></tr>"
            )
        if len(rows) >= MAX_ROWS:
            break
    return f"<table cellspacing='0' cellpadding='1'>{''.join(rows)}</table>" if rows else ""


def _card_value(value: object, key: str = "") -> str:
    """A card field as short text (used for single values; objects become tables)."""
    return _scalar(key, value)


def card_html(
    name: str,
    config: dict | None,
    card: dict | None,
    bundled: bool | None,
    error: str | None = None,
    source: str | None = None,
) -> str:
    """A model card as HTML: geometry, codec, backbone, then the card's fields as small tables.

    ``source`` says where the model comes from; by default "bundled", "your library", or for
    ``bundled`` None "in memory only" (a new random model). Everything from the file is text,
    never markup (escaped); dates with a zone are shown in local time.
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
        if cfg.get("tokenizer") == "bpe":
            rows.append(("Length", f"{cfg.get('seq_len')} tokens"))
            rows.append(("Tokens", f"learned BPE vocabulary, {int(cfg.get('num_classes') or 0):,} entries"))
        else:
            rows.append(("Length", f"{cfg.get('seq_len')} bytes"))
    ell = cfg.get("ell", 1)
    rows.append(("Digits", f"\u2113={ell}" + (" (MDM baseline)" if ell == 1 else " (Prime)")))
    rows.append(("Backbone", f"{cfg.get('n_layers')}\u00d7{cfg.get('d_model')}, {cfg.get('n_heads')} heads"))
    if isinstance(card, dict) and card.get("sampler") is not None:
        recommended, problem = enginelink.recommended_settings(card)
        text = enginelink.describe_settings(recommended) if recommended else "none"
        rows.append(("Recommended sampler", f"invalid ({problem[:300]}): not used" if problem else text))
    sections = []
    for key, value in sorted((card or {}).items(), key=lambda kv: str(kv[0])):
        if str(key) in HIDDEN_KEYS or str(key) == "sampler":  # "sampler": the row above
            continue
        if isinstance(value, dict):
            inner = _table(value)
            if inner:
                sections.append((_label(key), inner))
        elif len(rows) < 4 * MAX_ROWS:
            text = _json(value)[:300] if isinstance(value, list) else _scalar(str(key), value)
            rows.append((_label(key), text))
    cell = "<tr><td valign='top' style='color:#888'>{}</td><td>&nbsp;{}</td></tr>"
    table = "".join(cell.format(html.escape(str(k)), html.escape(str(v))) for k, v in rows)
    # section titles and tables are escaped above; only our own markup is added here
    blocks = "".join(
        f"<p style='margin:6px 0 2px 0'><b>{html.escape(title.capitalize())}</b></p>{inner}"
        for title, inner in sections[:MAX_ROWS]
    )
    return f"<b>{name}</b><table>{table}</table>{blocks}"


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
        self.loaded_path: str | None = None  # the model the workspace uses now (marked in the list)

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
            self._mark(item)
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

    def mark_loaded(self, path: str | None) -> None:
        """Mark the model the workspace uses now (bold, with a dot); None marks nothing."""
        self.loaded_path = str(Path(path).resolve()) if path else None
        for i in range(self.list.count()):
            self._mark(self.list.item(i))

    def loaded_item(self) -> QListWidgetItem | None:
        """The list entry marked as loaded, if it is listed."""
        for i in range(self.list.count()):
            if self.list.item(i).font().bold():
                return self.list.item(i)
        return None

    def _mark(self, item: QListWidgetItem) -> None:
        loaded = (
            self.loaded_path is not None and str(Path(item.data(PATH_ROLE)).resolve()) == self.loaded_path
        )
        label = item.text().removeprefix(LOADED_MARK)
        item.setText(LOADED_MARK + label if loaded else label)
        font = item.font()
        font.setBold(loaded)
        item.setFont(font)
        item.setToolTip(
            "Loaded: the Generate and Compare tabs use this model" if loaded else "Double-click to load"
        )

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
            reveal(self, Path(item.data(PATH_ROLE)).parent, "model folder")

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
