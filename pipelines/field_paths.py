"""The one writer of a problem's place in a definition file, for every loader (study files, phenotype files):
('codes', 0, 'codes', 2) -> 'codes[0].codes[2]'."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def field_path(location: tuple[Any, ...], union_tags: Mapping[str, Collection[str]] | None = None) -> str:
    """Pydantic's error location as a path a reader finds in the file: ('exposures', 3, 'phenotype') ->
    'exposures[3].phenotype'.

    `union_tags` maps a field holding a discriminated union to the union's tags: pydantic puts the tag it tried
    after that field (('rule', 'min_records', 'min_records'), ('index', 'first_visit', ...)); the tag is not a field
    of the file and is dropped."""
    tags = union_tags or {}
    text = ""
    for index, part in enumerate(location):
        if isinstance(part, int):
            text += f"[{part}]"
        elif index > 0 and part in tags.get(location[index - 1], ()):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text
