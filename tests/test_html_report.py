"""report.html: the run and sweep reports as self-contained pages, rendered in a real
browser (headless Chromium): a screenshot that is not blank, the table rows in the DOM, the
click-to-sort script run by the browser, links between the sweep page and the run pages."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from regx.report.html import Link, render_markdown, run_links, write_run_html
from regx.report.html_sweep import Interval, run_interval
from regx.report.run_report import METRIC_ROWS

CHROMIUM = Path("/usr/bin/chromium")
TINY = ["dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.progress=false"]
DATA_PNG = re.compile(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


# -- a real browser ----------------------------------------------------------------------------
def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.is_file():
        pytest.skip(
            "Chromium is not installed: `apt-get install -y chromium` (Debian; .ci/run does it)"
        )
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)  # a fresh one each time
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    proc = subprocess.run(
        [str(CHROMIUM), *flags, *args, url], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def dump_dom(tmp_path: Path, page: Path, fragment: str = "") -> str:
    return chromium(tmp_path, page.resolve().as_uri() + fragment, "--dump-dom").stdout


def screenshot(tmp_path: Path, page: Path, name: str) -> Image.Image:
    png = tmp_path / name
    # a large inlined figure may still be decoding when the page has loaded: draw it first
    wait = ["--run-all-compositor-stages-before-draw", "--virtual-time-budget=2000"]
    size = ["--window-size=1200,900"]
    chromium(tmp_path, page.resolve().as_uri(), f"--screenshot={png}", *size, *wait)
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 900)
    return image


def assert_not_blank(image: Image.Image) -> None:
    """More than one colour, and more than 2 % of the pixels differ from the background."""
    colors = image.getcolors(maxcolors=1 << 24)
    assert colors is not None and len(colors) > 1
    background = max(colors)[0]
    assert 1 - background / (image.width * image.height) > 0.02, sorted(colors)[-3:]


class Tables(HTMLParser):
    """Every <table> of a page: rows as (attributes of the <tr>, texts of the cells); `ids`
    the index of each table that has an id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[tuple[dict[str, str | None], list[str]]]] = []
        self.ids: dict[str, int] = {}
        self.cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
            table_id = dict(attrs).get("id")
            if table_id:
                self.ids[table_id] = len(self.tables) - 1
        elif tag == "tr" and self.tables:
            self.tables[-1].append((dict(attrs), []))
        elif tag in ("td", "th") and self.tables:
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.tables:
            self.tables[-1][-1][1].append("".join(self.cell).strip())
            self.cell = None

    def body_rows(self, table_id: str) -> list[tuple[dict[str, str | None], list[str]]]:
        return [row for row in self.tables[self.ids[table_id]] if "data-group" in row[0]]


def hrefs(text: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', text)


def assert_self_contained(text: str) -> None:
    """No address outside the page's folder: no scheme, no absolute path, no <link>."""
    assert "<link" not in text and "http://" not in text and "https://" not in text
    for src in re.findall(r'src="([^"]*)"', text):
        assert src.startswith("data:image/png;base64,"), src[:60]
    for href in hrefs(text):
        assert "://" not in href and not href.startswith("/"), href


# -- a real run --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A tiny run trained as job 0 of a multirun folder (Hydra writes multirun.yaml there)."""
    from conftest import train_in_process

    sweep = tmp_path_factory.mktemp("multirun")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    run_dir = sweep / "0"
    run_dir.mkdir()
    summary = train_in_process([*TINY, "trainer.epochs=2"], run_dir)
    return run_dir, summary


def test_every_run_writes_a_self_contained_report_html(real_run):
    run_dir, summary = real_run
    text = (run_dir / "report.html").read_text()
    assert_self_contained(text)
    # the figures of report.md, inlined byte for byte
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (run_dir / "report.md").read_text())
    assert {"reliability.png", "confidence.png", "curves.png"} <= set(figures)
    inlined = [base64.b64decode(b) for b in DATA_PNG.findall(text)]
    assert inlined == [(run_dir / name).read_bytes() for name in figures]
    assert "<h2>Calibration</h2>" in text
    assert f"<strong>T = {summary['temperature']:.4g}</strong>" in text
    assert hrefs(text) == ["../report.html"]  # a job of a sweep links to the sweep's page


def test_the_run_page_renders_in_chromium(real_run, tmp_path):
    run_dir, summary = real_run
    image = screenshot(tmp_path, run_dir / "report.html", "run.png")
    assert_not_blank(image)
    assert_not_blank(image.crop((0, 780, 1200, 900)))  # the reliability diagram, drawn
    tables = Tables(dump_dom(tmp_path, run_dir / "report.html")).tables
    header, *rows = tables[0]
    assert header[1] == ["metric", "validation", "test", "test after TS"]
    assert len(rows) == len(METRIC_ROWS)
    assert rows[0][1] == [
        "accuracy (%)",
        *(f"{100 * summary[k]['acc']:.2f}" for k in ("val", "test", "test_ts")),
    ]


# -- a hand-made sweep -------------------------------------------------------------------------
def tiny_png(path: Path, shade: int) -> None:
    Image.new("RGB", (40, 20), (shade, 90, 160)).save(path)


def make_run(root: Path, name: str, loss: str, seed: int, summary: dict | None) -> Path:
    """A run folder as Hydra and the engine leave it, with a one-figure report page."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"loss": {"_target_": f"regx.losses.{loss}.Loss"}, "aug": None, "seed": seed}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"loss={loss}", f"seed={seed}"]))
    choices = {"loss": loss, "dataset": "digits"}
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    if summary is not None and summary["status"] == "finished":
        tiny_png(run / "reliability.png", 40 * seed)
        write_run_html(
            run, f"# Run report: {loss} seed {seed}\n\n![reliability](reliability.png)\n"
        )
    return run


SWEEP = {  # loss: [(acc, ece, ci of acc or None)] per seed; am_softmax's run failed
    "ce": [(0.91, 0.05, (0.89, 0.93)), (0.93, 0.04, (0.90, 0.95)), (0.92, 0.06, (0.90, 0.94))],
    "gamma_ce": [(0.95, 0.02, (0.93, 0.97)), (0.94, 0.03, (0.92, 0.96))],
    "focal": [(0.89, 0.08, None), (0.90, 0.07, None)],
    "am_softmax": [],
}


@pytest.fixture
def sweep_dir(tmp_path):
    root = tmp_path / "sweep"
    job = 0
    for loss, seeds in SWEEP.items():
        for seed, (acc, ece, ci) in enumerate(seeds):
            summary = {
                "status": "finished",
                "test": {"acc": acc, "ece": ece, "nll": 0.3},
                "test_ts": {"ece": ece / 2},
                "val": {"acc": acc + 0.01},
                "temperature": 1.5,
            }
            if ci is not None:  # nested like the summary, one run flat-keyed
                summary["ci"] = {"test.acc": list(ci)} if seed == 1 else {"test": {"acc": ci}}
            make_run(root, str(job), loss, seed, summary)
            job += 1
    failed = {"status": "failed", "message": "loss.s=<b>0</b>: must be > 0"}
    make_run(root, str(job), "am_softmax", 0, failed)
    return root


def write_sweep(root: Path, *args: str) -> Path:
    from typer.testing import CliRunner

    from regx.cli import app

    result = CliRunner().invoke(app, ["report", str(root), "--html", *args])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output
    out = Path(args[args.index("--out") + 1]) if "--out" in args else root
    return out / "report.html"


def expected_cells(loss: str) -> tuple[str, str]:
    """(`mean ± std` of test acc, its `95 % CI [lo, hi]`), computed here from SWEEP."""
    rows = SWEEP[loss]
    acc = np.array([r[0] for r in rows]) * 100
    text = f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}"
    if rows[0][2] is None:
        return text, text
    lo = np.mean([r[2][0] for r in rows]) * 100
    hi = np.mean([r[2][1] for r in rows]) * 100
    return text, f"{text}95 % CI [{lo:.2f}, {hi:.2f}]"


def test_the_sweep_page_in_chromium_has_a_row_per_group_and_per_run(sweep_dir, tmp_path):
    page = write_sweep(sweep_dir)
    text = page.read_text()
    assert_self_contained(text)
    assert len(DATA_PNG.findall(text)) == 1  # compare.png, inlined
    assert "loss.s=&lt;b&gt;0&lt;/b&gt;" in text  # user text is shown, not interpreted

    image = screenshot(tmp_path, page, "sweep.png")
    assert_not_blank(image)
    assert_not_blank(image.crop((0, 600, 1200, 900)))  # compare.png, drawn
    dom = Tables(dump_dom(tmp_path, page))
    groups, runs = dom.body_rows("groups"), dom.body_rows("runs")
    assert len(groups) == len(SWEEP)
    assert len(runs) == sum(len(seeds) for seeds in SWEEP.values()) + 1
    header = dom.tables[dom.ids["groups"]][0][1]
    acc_column = header.index("test acc (%)")
    by_loss = {cells[0]: cells for _, cells in groups}
    for loss in ("ce", "gamma_ce", "focal"):
        assert by_loss[loss][header.index("n")] == str(len(SWEEP[loss]))
        assert by_loss[loss][acc_column] == expected_cells(loss)[1], loss
    assert by_loss["am_softmax"][acc_column] == "—"
    # every run link resolves to that run's page
    for href in hrefs(text):
        assert (page.parent / href).is_file(), href
    run_links = [h for h in hrefs(text) if h.endswith("/report.html")]
    assert len(run_links) == 2 * 7  # 7 finished runs: in the group table and the run table


def test_clicking_a_header_sorts_and_the_address_can_ask_for_it(sweep_dir, tmp_path):
    page = write_sweep(sweep_dir)
    static = Tables(page.read_text())
    header = static.tables[static.ids["groups"]][0][1]
    column = header.index("test acc (%)") + 1
    mean_acc = {loss: np.mean([r[0] for r in rows]) for loss, rows in SWEEP.items() if rows}
    ascending = sorted(mean_acc, key=mean_acc.get)
    for fragment, order in (
        (f"#sort={column}", ascending),
        (f"#sort=-{column}", ascending[::-1]),
    ):
        dom = Tables(dump_dom(tmp_path, page, fragment))
        # the group without a finished run (—) goes last in both directions
        assert [cells[0] for _, cells in dom.body_rows("groups")] == [*order, "am_softmax"]


def test_links_stay_relative_from_another_out_folder(sweep_dir, tmp_path):
    from regx.report.sweep import sweep_report

    sweep_report([sweep_dir], echo=False, plot=False)
    assert (sweep_dir / "report.md").is_file() and not (sweep_dir / "report.html").exists()
    out = tmp_path / "elsewhere" / "report"
    page = write_sweep(sweep_dir, "--out", str(out))
    links = [h for h in hrefs(page.read_text()) if h.endswith("/report.html")]
    assert links and all(h.startswith("../../sweep/") for h in links)
    assert all((out / h).is_file() for h in links)


def test_a_run_page_links_up_to_its_sweep_or_its_run(tmp_path):
    job = tmp_path / "sweep" / "3"
    evaluation = tmp_path / "run" / "eval" / "20260101-120000-shift"
    for folder in (job, evaluation, tmp_path / "alone"):
        folder.mkdir(parents=True)
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra: {}\n")
    (tmp_path / "run" / "report.md").write_text("# Run report\n")
    assert run_links(job) == [Link("↑ sweep report", "../report.html")]
    assert run_links(evaluation) == [Link("↑ the run's report", "../../report.html")]
    assert run_links(tmp_path / "alone") == []
    write_run_html(evaluation, "# Evaluation report: digits\n\nshift `corrupt`\n")
    text = (evaluation / "report.html").read_text()
    assert "<title>Evaluation report: digits</title>" in text
    assert '<a href="../../report.html">' in text and "<code>corrupt</code>" in text


# -- the pieces --------------------------------------------------------------------------------
def test_raw_html_is_escaped_and_missing_figures_are_named(tmp_path):
    tiny_png(tmp_path / "here.png", 7)
    body = render_markdown(
        "a <script>x()</script> `<i>`\n\n![one](here.png) ![two](gone.png) ![three](http://a/b.png)",
        tmp_path,
    )
    assert "<script>" not in body and "&lt;script&gt;x()&lt;/script&gt;" in body
    assert base64.b64decode(DATA_PNG.findall(body)[0]) == (tmp_path / "here.png").read_bytes()
    assert "[figure 'two': gone.png not found next to the report]" in body
    assert "[figure 'three': http://a/b.png not found next to the report]" in body
    assert body.count("<img") == 1


def test_a_run_interval_is_read_nested_flat_or_as_bounds():
    assert run_interval({"ci": {"test": {"acc": [0.1, 0.3]}}}, "test.acc") == Interval(0.1, 0.3)
    assert run_interval({"ci": {"test.ece": [0.01, 0.02]}}, "test.ece") == Interval(0.01, 0.02)
    assert run_interval({"ci": {"test": {"acc": {"lo": 0.2, "hi": 0.4}}}}, "test.acc") == Interval(
        0.2, 0.4
    )
    assert run_interval({"ci": {"test": {"acc": [0.1, None]}}}, "test.acc") is None
    assert run_interval({"test": {"acc": 0.5}}, "test.acc") is None
