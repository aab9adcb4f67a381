from __future__ import annotations

from pathlib import Path

from request_schema import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_table_is_the_schema():
    assert markdown_table() in README.read_text()
