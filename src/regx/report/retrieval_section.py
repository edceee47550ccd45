"""The run report's retrieval section: the closed set (test images of the trained classes)
and, with `dataset.holdout_classes`, the open set (test images of classes never trained on).

Both come from summary.json (`retrieval`, `retrieval_open`): embeddings `model.features(x)`
before the head, cosine similarity, every image a query against all the others.
"""

from __future__ import annotations

from typing import Any

from regx.report.format import fmt_metric


def _ks(*sets: dict[str, Any]) -> list[str]:
    """The k of recall@k present in any of the result sets, in numeric order (1 first)."""
    found = {str(k) for s in sets for k in (s.get("recall_at_k") or {})}
    return sorted(found - {"1"}, key=int)


def _cell(results: dict[str, Any], k: str | None, key: str = "") -> str:
    if k is not None:
        value = (results.get("recall_at_k") or {}).get(k)
        if value is None and k == "1":
            value = results.get("recall_at_1")
        return fmt_metric(value, 100, 2)
    return fmt_metric(results.get(key), 100, 2)


def retrieval_section(summary: dict[str, Any]) -> list[str]:
    """Markdown lines for `retrieval` and `retrieval_open`; [] when neither is there."""
    closed = summary.get("retrieval") or {}
    opened = summary.get("retrieval_open") or {}
    gallery = summary.get("retrieval_gallery") or {}
    named = (("test classes", closed), ("held-out classes", opened), ("gallery", gallery))
    columns = [(name, r) for name, r in named if r]
    if not columns:
        return []
    header = "| metric | " + " | ".join(name for name, _ in columns) + " |"
    lines = [
        "## Retrieval (embeddings before the head, cosine, leave-one-out)",
        "",
        header,
        "|---|" + "---:|" * len(columns),
        "| recall@1 (%) | " + " | ".join(_cell(r, "1") for _, r in columns) + " |",
    ]
    for k in _ks(closed, opened, gallery):
        lines.append(f"| recall@{k} (%) | " + " | ".join(_cell(r, k) for _, r in columns) + " |")
    lines.append(
        "| MAP@R (%) | " + " | ".join(_cell(r, None, "map_at_r") for _, r in columns) + " |"
    )
    if any("n_queries" in r for _, r in columns):
        counts = [str(r["n_queries"]) if "n_queries" in r else "—" for _, r in columns]
        lines.append("| queries | " + " | ".join(counts) + " |")
    lines.append("")
    if opened:
        names = opened.get("classes") or []
        lines += [
            "Open set: the test images of the held-out classes "
            + (", ".join(f"`{n}`" for n in names) if names else "(names not recorded)")
            + ", never seen in training; the model classifies only the others.",
            "",
        ]
    if gallery:
        lines += [
            f"Gallery: {gallery.get('images')} images of {len(gallery.get('classes') or [])} "
            f"classes in `{gallery.get('folder')}` (`regx evaluate --retrieval`).",
            "",
        ]
    return lines
