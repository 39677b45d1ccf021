"""Pages parsed back with the standard library's parser, so tests read cells, not substrings."""

from __future__ import annotations

from html.parser import HTMLParser


class Cells(HTMLParser):
    """The text of every table row of a page, per table (``data-table`` or class), headers included."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.styles: dict[str, list[list[str]]] = {}
        self._table = self._row = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("data-table") or attrs.get("class") or f"table{len(self.tables)}"
            self.tables[self._table], self.styles[self._table] = [], []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.styles[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self.styles[self._table][-1].append(f"{attrs.get('class') or ''}|{attrs.get('style') or ''}")
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
