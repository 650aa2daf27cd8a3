"""The README's links lead somewhere: every in-document link to a heading that exists, every file link to a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_and_links(markdown: str) -> tuple[set[str], list[str]]:
    """Anchors of the headings and every link target, code blocks left out (a `#` there is a comment)."""
    outside_code = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+)$", outside_code, flags=re.MULTILINE)
    return {github_anchor(heading) for heading in headings}, LINK.findall(outside_code)


def test_every_in_document_link_of_the_readme_points_at_a_heading():
    anchors, links = anchors_and_links((REPO / "README.md").read_text(encoding="utf-8"))
    in_document = [link for link in links if link.startswith("#")]
    assert in_document, "the README links to none of its sections: this test would prove nothing"
    assert [link for link in in_document if link[1:] not in anchors] == []


def test_every_file_link_of_the_readme_points_at_a_file():
    _, links = anchors_and_links((REPO / "README.md").read_text(encoding="utf-8"))
    files = [link.split("#")[0] for link in links if not link.startswith(("#", "http://", "https://"))]
    assert files
    assert [link for link in files if not (REPO / link).exists()] == []


def test_a_link_to_a_missing_heading_is_found():
    anchors, links = anchors_and_links("# Sagas\n\n## Deploy to a real account\n\nSee [x](#operations).\n")
    assert "deploy-to-a-real-account" in anchors
    assert [link for link in links if link[1:] not in anchors] == ["#operations"]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What runs: the OrderFulfillment saga", "what-runs-the-orderfulfillment-saga"),
        ("Rehearse it locally: `make deploy-local`", "rehearse-it-locally-make-deploy-local"),
        ("Bootstrap, once per account and region", "bootstrap-once-per-account-and-region"),
    ],
)
def test_anchors_are_the_ones_github_makes(heading, anchor):
    assert github_anchor(heading) == anchor
