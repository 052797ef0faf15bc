"""Fill the tables of studies/findings/README.md from the generated tables/*.md.

The README marks each excerpt with a start and an end comment:

    <!-- table findings_oneshot find_eval_ranking -->
    ... (replaced by the section "### find_eval_ranking..." of tables/findings_oneshot.md)
    <!-- end table -->

``<!-- table NAME mde -->`` takes the whole tables/NAME_mde.md. Run with no argument to
rewrite the README in place; ``--check`` exits 1 when it is not up to date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = re.compile(r"(<!-- table (\S+) (\S+) -->\n)(.*?)(<!-- end table -->)", re.S)


def section(name: str, family: str) -> str:
    """The ``### family`` section of tables/NAME.md, up to the next heading."""
    if family == "mde":
        return (HERE / "tables" / f"{name}_mde.md").read_text()
    text = (HERE / "tables" / f"{name}.md").read_text()
    match = re.search(rf"^### {re.escape(family)}[:\s].*?(?=^##|\Z)", text, re.S | re.M)
    if match is None:
        raise SystemExit(f"tables/{name}.md has no section '### {family}'")
    return match.group(0).rstrip("\n") + "\n"


def filled(readme: str) -> str:
    return MARK.sub(lambda m: m.group(1) + section(m.group(2), m.group(3)) + m.group(5), readme)


def main(argv: list[str]) -> int:
    path = HERE / "README.md"
    old = path.read_text()
    new = filled(old)
    if "--check" in argv:
        return 0 if new == old else 1
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
