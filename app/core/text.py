"""The rules for text the API stores and returns: names (of datasets, runs and
features) and text labels. Stated once: the request schemas state them in the
JSON Schema, and the dataset service checks every value against them before
anything is written (the CSV upload has no schema of its own).

Every Unicode character but NUL is kept exactly: PostgreSQL's text and JSON
columns cannot hold NUL, so it is refused everywhere. Lone surrogates cannot
be UTF-8, so neither JSON nor a CSV file can carry one (both are refused
while parsing). Lengths count code points, as PostgreSQL's varchar does.
"""

from __future__ import annotations

NAME_MAX = 200  # dataset, run and feature names: 1 to 200 characters
LABEL_MAX = 200  # a text label: 0 to 200 characters (a CSV's empty cell is a missing label)
NO_NUL = r"^[^\x00]*$"  # the JSON Schema pattern of both


def text_problem(
    value: str, *, what: str, max_length: int, allow_empty: bool = False
) -> str | None:
    """Why `value` cannot be stored as a name or label (None when it can)."""
    if not value and not allow_empty:
        return f"{what} is empty"
    if len(value) > max_length:
        return f"{what} has {len(value)} characters, more than {max_length}"
    if "\x00" in value:
        return f"{what} contains NUL (U+0000), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} contains a lone surrogate, which is not Unicode text"
    return None


# The registry's names go in paths (/models/{name}, /v2/models/{name}) and in
# references ("name", "name@3", "name@champion"): letters, digits and . _ -,
# starting with a letter or digit. An alias starts with a letter or _ (a
# reference's digits are a version) and is never "latest" (the newest version).
MODEL_NAME_MAX = 100
MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
ALIAS_MAX = 64
ALIAS = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
LATEST = "latest"
MODEL_REF = rf"^{MODEL_NAME}(@([1-9][0-9]{{0,8}}|{ALIAS}))?$"
