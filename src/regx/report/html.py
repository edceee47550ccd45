"""Self-contained HTML pages for the reports: each report.md rendered as report.html.

One file per page, readable offline and after it is copied or mailed: every figure is
inlined as a base64 `data:` URI, the style sheet and the few lines of script are inline,
and nothing refers to the network. Raw HTML in the markdown is shown as text, not
interpreted, because run messages and overrides are user text.

Tables with class `sortable` sort by a click on a column header (again: reversed). Two
cells compare as numbers when both start with one (`98.50 ± 0.20` sorts as 98.5), else as
text; cells without a number (`—`) go last either way. An address ending in `#sort=N`
(`#sort=-N`: descending) opens the page sorted by the N-th column, counted from 1.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element

import markdown
from markdown.extensions import Extension
from markdown.extensions.tables import TableExtension
from markdown.treeprocessors import Treeprocessor

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1f; background: #fff; max-width: 1180px; margin: 0 auto; padding: 18px 28px; }
nav { font-size: 13px; margin-bottom: 6px; }
nav a { margin-right: 14px; }
h1 { font-size: 24px; margin: 8px 0 10px; }
h2 { font-size: 19px; margin: 26px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #f3f3f5; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; margin: 10px 0; font-size: 14px; }
th, td { border: 1px solid #d6d6da; padding: 4px 9px; vertical-align: top; }
th { background: #eef0f4; text-align: left; }
tr:nth-child(even) td { background: #fafafc; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " ▲"; }
table.sortable th[data-order="desc"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { display: block; color: #666; font-size: 12px; }
.missing { color: #a33; font-style: italic; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
p.note { color: #555; font-size: 13px; }
"""

# Sorting: the key of a cell is its `data-sort` attribute, else its text; a leading number
# sorts numerically, a cell without one ("—") last in both directions.
SCRIPT = """
(function () {
  function key(cell) {
    var text = (cell.getAttribute("data-sort") || cell.textContent).trim();
    var number = parseFloat(text.replace("\\u2212", "-"));
    return isNaN(number) ? {text: text, number: null} : {text: text, number: number};
  }
  function compare(a, b) {
    if (a.number === null || b.number === null) {
      if (a.number === null && b.number === null) { return a.text.localeCompare(b.text); }
      return a.number === null ? 1 : -1;
    }
    return a.number - b.number;
  }
  function sortBy(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = descending ? -1 : 1;
    rows.sort(function (r, s) {
      var a = key(r.cells[column]), b = key(s.cells[column]);
      if ((a.number === null) !== (b.number === null)) { return compare(a, b); }
      return sign * compare(a, b);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === column) { th.setAttribute("data-order", descending ? "desc" : "asc"); }
      else { th.removeAttribute("data-order"); }
    });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        sortBy(table, i, th.getAttribute("data-order") === "asc");
      });
    });
  });
  var wanted = /^#sort=(-?)(\\d+)$/.exec(window.location.hash);
  if (wanted && tables.length) {
    var column = parseInt(wanted[2], 10) - 1;
    if (column >= 0 && column < tables[0].tHead.rows[0].cells.length) {
      sortBy(tables[0], column, wanted[1] === "-");
    }
  }
})();
"""


IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Link:
    """A navigation link at the top of a page; `href` is relative to the page."""

    text: str
    href: str


def data_uri(path: Path) -> str:
    """The file's bytes as a `data:<type>;base64,…` URI."""
    kind = IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


class _InlineImages(Treeprocessor):
    """Replace each `<img src="file">` by the file's data URI; a figure that is not a file
    next to the report (or an address elsewhere) becomes a line saying it is missing."""

    def __init__(self, md: markdown.Markdown, base_dir: Path) -> None:
        super().__init__(md)
        self.base_dir = base_dir.resolve()

    def run(self, root: Element) -> None:
        for img in root.iter("img"):
            src = img.get("src", "")
            path = (self.base_dir / src).resolve()
            local = "://" not in src and not src.startswith(("/", "data:"))
            if local and path.is_file() and path.is_relative_to(self.base_dir):
                img.set("src", data_uri(path))
                continue
            alt, tail = img.get("alt", ""), img.tail
            img.clear()
            img.tail = tail
            img.tag = "span"
            img.set("class", "missing")
            img.text = f"[figure {alt!r}: {src} not found next to the report]"


class _InlineImagesExtension(Extension):
    def __init__(self, base_dir: Path) -> None:
        super().__init__()
        self.base_dir = base_dir

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # after "inline" (which creates the <img> elements), before serialization
        md.treeprocessors.register(_InlineImages(md, self.base_dir), "regx_inline_images", 15)


def render_markdown(text: str, base_dir: Path) -> str:
    """HTML for the markdown `text`, its images read from `base_dir` and inlined."""
    # extension objects, not names: a name makes markdown scan every installed package
    md = markdown.Markdown(extensions=[TableExtension(), _InlineImagesExtension(base_dir)])
    # Raw HTML in the text is user text: shown escaped, never interpreted.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


def page(title: str, body: str, nav: list[Link] | None = None) -> str:
    """A whole HTML document: inline style, `body` (HTML), the sorting script at the end."""
    links = "".join(
        f'<a href="{html.escape(link.href, quote=True)}">{html.escape(link.text)}</a>'
        for link in nav or []
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + (f"<nav>{links}</nav>\n" if links else "")
        + body
        + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def markdown_title(text: str, default: str) -> str:
    """The text of the first `# heading` line, markdown emphasis and code marks removed."""
    for line in text.splitlines():
        if line.startswith("# "):
            return re.sub(r"[`*]", "", line[2:]).strip() or default
    return default


def run_links(run_dir: Path) -> list[Link]:
    """Links from a run page up: to the sweep's page for a job of a Hydra multirun (its
    folder holds multirun.yaml), to the run's own page for an evaluation in RUN_DIR/eval/."""
    links = []
    if (run_dir.parent / "multirun.yaml").is_file():
        links.append(Link("↑ sweep report", "../report.html"))
    if run_dir.parent.name == "eval" and (run_dir.parent.parent / "report.md").is_file():
        links.append(Link("↑ the run's report", "../../report.html"))
    return links


def write_run_html(run_dir: Path, markdown_text: str) -> Path:
    """Write run_dir/report.html from the run's report markdown; returns its path."""
    body = render_markdown(markdown_text, run_dir)
    path = run_dir / "report.html"
    path.write_text(page(markdown_title(markdown_text, "Run report"), body, run_links(run_dir)))
    return path
