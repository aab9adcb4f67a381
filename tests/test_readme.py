from __future__ import annotations

from pathlib import Path

from video_endpoint import settings
from video_endpoint.request_schema import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_table_is_the_schema():
    assert markdown_table() in README.read_text()


def test_readme_configuration_tables_are_the_settings():
    """Every environment variable is in one README table, generated from `video_endpoint.settings`."""
    text = README.read_text()
    for sections in (("model", "limits"), ("gpu",), ("server",), ("jobs",)):
        assert settings.markdown_table(*sections) in text, sections
    listed = {setting.section for setting in settings.SETTINGS}
    assert listed == {"model", "limits", "gpu", "server", "jobs"}
