#!/usr/bin/env python3
"""Fetch the jars listed in pom.xml from Maven Central when Maven itself is not installed.

Same artifacts and versions as `mvn dependency:copy-dependencies -DexcludeTransitive=true`,
each checked against the SHA-1 Maven Central publishes beside it. Standard library only:
this runs before the project's virtual environment exists.

    python3 infra/jars/fetch.py infra/jars/pom.xml .cache/jars
"""

from __future__ import annotations

import hashlib
import re
import sys
import urllib.request
import xml.etree.ElementTree as ET  # the pom is our own file, not untrusted input
from pathlib import Path

CENTRAL = "https://repo.maven.apache.org/maven2"
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def artifacts(pom: Path) -> list[tuple[str, str, str]]:
    root = ET.parse(pom).getroot()  # noqa: S314
    props_el = root.find("m:properties", NS)
    children = list(props_el) if props_el is not None else []
    props = {el.tag.split("}")[1]: (el.text or "") for el in children}

    def expand(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: props[m.group(1)], text)

    found = []
    for dep in root.findall("m:dependencies/m:dependency", NS):
        group, artifact, version = (
            expand(dep.findtext(f"m:{tag}", default="", namespaces=NS))
            for tag in ("groupId", "artifactId", "version")
        )
        found.append((group, artifact, version))
    return found


def fetch(group: str, artifact: str, version: str, out: Path) -> Path:
    name = f"{artifact}-{version}.jar"
    target = out / name
    if target.exists():
        return target
    url = f"{CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{name}"
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 (fixed https host)
        data = response.read()
    with urllib.request.urlopen(url + ".sha1", timeout=60) as response:  # noqa: S310
        expected = response.read().decode().split()[0].strip()
    if hashlib.sha1(data).hexdigest() != expected:  # noqa: S324 (Maven Central publishes SHA-1)
        raise SystemExit(f"checksum mismatch for {name}")
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def main(argv: list[str]) -> int:
    pom, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for group, artifact, version in artifacts(pom):
        print(f"    {fetch(group, artifact, version, out).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
