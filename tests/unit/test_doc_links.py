"""Every link of README.md, CHANGELOG.md and docs/ resolves (files and #anchors); external
links are well-formed (never fetched)."""

from __future__ import annotations

from pathlib import Path

from lakehouse.reference import anchors, broken_links, documentation_files, heading_slug

ROOT = Path(__file__).resolve().parents[2]


def test_every_documentation_link_resolves() -> None:
    files = documentation_files(ROOT)
    assert ROOT / "README.md" in files
    assert ROOT / "docs" / "architecture.md" in files
    assert broken_links(ROOT, files) == []


def test_heading_slugs_follow_github() -> None:
    assert heading_slug("Silver → gold (OMOP)") == "silver--gold-omop"
    assert heading_slug("The `ops.job_runs` table") == "the-opsjob_runs-table"
    assert heading_slug("病案首页（首页）规则") == "病案首页首页规则"
    assert heading_slug("[Link](x.md) and *emphasis*") == "link-and-emphasis"
    assert heading_slug("C++ & Spark 4.2") == "c--spark-42"
    text = '# Notes\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n<a id="x"></a>\n'
    assert anchors(text) == {"notes", "notes-1", "notes-2", "x"}


def test_broken_links_are_reported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(
        "# 数据字典\n\n## Notes\n\n## Notes\n\n## Silver → gold\n", encoding="utf-8"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "\n".join(
            [
                "[fine](docs/a.md) [zh](docs/a.md#数据字典)",
                "[enc](docs/a.md#%E6%95%B0%E6%8D%AE%E5%AD%97%E5%85%B8)",
                "[dup](docs/a.md#notes-1) [arrow](docs/a.md#silver--gold) [dir](docs/)",
                "[missing](docs/nope.md)",
                "[bad anchor](docs/a.md#nowhere)",
                "[self](#no-such-heading) ![img](docs/missing.png)",
                "[outside](../elsewhere.md) [ext](https://example.org/x?y=1#z)",
                "[bad url](http://exa_mple/) [scheme](ftp://example.org/f)",
                "`[in code](ignored.md)`",
                "```",
                "[in a fence](ignored.md)",
                "```",
                "[ref]: docs/gone.md",
            ]
        ),
        encoding="utf-8",
    )
    found = broken_links(tmp_path, [readme, docs / "a.md"])
    where = [line.split(": ")[0].split(":")[1] + " " + line.split(": ")[1] for line in found]
    assert where == [
        "4 docs/nope.md",
        "5 docs/a.md#nowhere",
        "6 #no-such-heading",
        "6 docs/missing.png",
        "7 ../elsewhere.md",
        "8 http://exa_mple/",
        "8 ftp://example.org/f",
        "13 docs/gone.md",
    ]
    assert all(line.startswith("README.md:") for line in found)
    assert "no heading #nowhere in docs/a.md" in found[1]
