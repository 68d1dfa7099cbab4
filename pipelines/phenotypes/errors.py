"""The one error a broken phenotype definition raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefinitionProblem:
    """One thing wrong with one phenotype file.

    ``field`` is the path to the offending value inside the YAML document, written the way a reader finds it:
    ``codes[0].codes[2]`` is the third code of the first code group. ``(file)`` means the file as a whole.
    """

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class PhenotypeDefinitionError(Exception):
    """A phenotype definition is malformed. Raised while loading, before any SQL runs.

    The message has one line per problem, ``<file>: <field path>: <problem>``; ``problems`` holds them as data.
    """

    def __init__(self, problems: list[DefinitionProblem]):
        if not problems:
            raise ValueError("PhenotypeDefinitionError needs at least one problem")
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
