"""README is the front page; docs/ holds the reference. The generated tables there are what the
code says."""

import re
from pathlib import Path

from video_endpoint import settings
from video_endpoint.request_schema import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_readme_api_table_is_the_schema():
    assert markdown_table() in README.read_text()


def test_configuration_tables_are_the_settings():
    """Every environment variable is in one table in docs/, generated from `video_endpoint.settings`."""
    text = "\n".join(path.read_text() for path in DOCS)
    for sections in (("model", "limits"), ("gpu",), ("server",), ("jobs",)):
        assert settings.markdown_table(*sections) in text, sections
    listed = {setting.section for setting in settings.SETTINGS}
    assert listed == {"model", "limits", "gpu", "server", "jobs"}


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^a-z0-9 \-]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_readme_is_a_front_page_and_every_link_between_the_documents_resolves():
    assert README.read_text().count("\n") <= 250
    for document in (README, *DOCS):
        for target, anchor in re.findall(r"\]\(([^)#:]*\.md)?#?([a-z0-9\-]*)\)", document.read_text()):
            path = (document.parent / target) if target else document
            assert path.is_file(), (document.name, target)
            assert not anchor or anchor in anchors(path), (document.name, target, anchor)
