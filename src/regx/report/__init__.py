"""Human-readable reports: per run (report.md + plots) and per sweep (`regx report`)."""
