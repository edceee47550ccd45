"""The studies of docs/studies.md: one module per claim (mixing, noise, open_set, shift),
the comparison rule and verdicts (rules), reading runs (runs), the page (page, figures).
Entry point: scripts/studies_page.py, which puts scripts/ on sys.path."""
