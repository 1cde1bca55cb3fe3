"""Development-only code, not installed: the README generator and the evaluation harness.

Imported as `devtools` (tests/ is on sys.path under pytest; the benchmarks add it themselves)."""
