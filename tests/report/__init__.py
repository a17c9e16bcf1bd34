"""Report tests (a package, so its conftest.py is not imported as the top-level `conftest`
that tests elsewhere import `judged_success` from)."""
