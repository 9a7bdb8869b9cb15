"""The README and docs/ explain the project from inside it, and stay true to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.core.settings import Settings
from app.nn.hyperparameters import DEFAULTS, RULES
from app.nn.rules import Rule

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./|shared/|DESIGN\.md|DESIGN §")
    found = {
        f"{path.relative_to(ROOT)}:{i}": line
        for path in DOCS
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    }
    assert found == {}


def test_relative_links_and_named_files_exist() -> None:
    missing = []
    for path in DOCS:
        text = path.read_text()
        for target in re.findall(r"\]\(([^)#:]+)\)", text):
            if not (path.parent / target).exists():
                missing.append(f"{path.name}: {target}")
        for named in re.findall(r"`((?:app|tests|bench|alembic|docs)/[\w/.-]+)`", text):
            if not (ROOT / named).exists():
                missing.append(f"{path.name}: {named}")
    assert missing == []


def documented_values(rule: Rule) -> str:
    """How docs/design.md writes a rule's values."""
    if rule.kind == "choice":
        text = ", ".join(rule.choices)
    elif rule.kind == "bool":
        text = "bool"
    else:
        low, high = (rule.ge, rule.gt), (rule.le, rule.lt)
        if any(v is not None for v in low) and any(v is not None for v in high):
            opening = "[" if rule.ge is not None else "("
            closing = "]" if rule.le is not None else ")"
            a = rule.ge if rule.ge is not None else rule.gt
            b = rule.le if rule.le is not None else rule.lt
            text = f"{opening}{fmt(a)}, {fmt(b)}{closing}"
            if rule.kind == "int":
                text = f"integer in {text}"
        else:
            noun = "integer" if rule.kind == "int" else "number"
            op, v = ("≥", rule.ge) if rule.ge is not None else (">", rule.gt)
            text = f"{noun} {op} {fmt(v)}"
    return f"{text}, null" if rule.nullable else text


def fmt(v: float | None) -> str:
    assert v is not None
    return "2**63" if v == 2**63 else (str(int(v)) if float(v).is_integer() else str(v))


def test_the_hyperparameter_table_is_the_engines_rules() -> None:
    text = (ROOT / "docs" / "design.md").read_text()
    table = text.split("| name | values | default | meaning |")[1].split("\n\n")[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.strip().splitlines()[1:]
    ]
    documented = {name: (values, default) for name, values, default, _ in rows}
    expected = {
        name: (documented_values(rule), json.dumps(DEFAULTS[name]).strip('"'))
        for name, rule in RULES.items()
    }
    assert documented == expected


def test_every_setting_is_in_the_readmes_table() -> None:
    rows = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `TWOLAYER_")
    ]
    table = "\n".join(rows)
    missing = [f for f in Settings.model_fields if f"`TWOLAYER_{f.upper()}`" not in table]
    assert missing == []
