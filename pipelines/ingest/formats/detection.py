"""Which layout an extract folder has, from the files and columns present.

Each format of the registry (registry.FORMATS) has a signature; exactly one must match. A descriptor file
(extract_mapping.yaml) states the layout and wins. None matching, or several, is an ExtractError naming the files
and columns each format expects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipelines.ingest.formats import registry
from pipelines.ingest.formats.base import DetectedFormat, ExtractFormat, LayoutError
from pipelines.ingest.formats.canonical import CANONICAL
from pipelines.ingest.formats.files import DATA_FILE_SUFFIXES, table_files
from pipelines.ingest.formats.omop import OMOP
from pipelines.ingest.formats.site_mapping import SITE_MAPPING, SITE_MAPPING_FILE
from pipelines.ingest.formats.synthea import SYNTHEA
from pipelines.ingest.loader import ExtractError

__all__ = ["CANONICAL", "OMOP", "SITE_MAPPING", "SITE_MAPPING_FILE", "SYNTHEA", "DetectedFormat", "detect_format",
           "expected_layouts"]

expected_layouts = registry.expected_layouts


def detect_format(folder: Path) -> DetectedFormat:
    """The folder's format; an ExtractError naming what is missing when none (or more than one) is recognised."""
    folder = Path(folder)
    if folder.is_file():
        raise ExtractError(f"{folder} is a file, not an extract folder: give the folder that holds the extract's "
                           f"files ({folder.parent}).")
    if not folder.is_dir():
        raise ExtractError(f"{folder}: no such extract folder.")
    files = table_files(folder)
    if not files and not (folder / SITE_MAPPING_FILE).exists():
        raise ExtractError(_no_data_files(folder))
    formats = registry.FORMATS
    for extract_format in formats:
        if extract_format.signature.descriptor and extract_format.signature_problem(folder, files) is None:
            return _detected(extract_format, folder, files)

    matches = []
    partial: list[str] = []
    for extract_format in formats:
        if extract_format.signature.descriptor:
            continue
        problem = extract_format.signature_problem(folder, files)
        if problem is None:
            matches.append(extract_format)
        elif problem:
            partial.append(problem)
    if len(matches) > 1:
        signature_files = sorted({files[m.signature.file].name for m in matches})
        raise ExtractError(
            f"{folder}: mixed layouts: {', '.join(signature_files)} match the "
            f"{' and '.join(m.name for m in matches)} formats. An extract folder holds one layout.\n"
            f"{expected_layouts()}"
        )
    if not matches:
        found = ", ".join(sorted(p.name for p in files.values())) or "no data files"
        detail = ("; ".join(partial) + ". ") if partial else ""
        detail += "".join(extract_format.explain_mismatch(folder, files) for extract_format in formats)
        raise ExtractError(f"{folder}: unrecognised extract layout (found: {found}). {detail}\n{expected_layouts()}")
    return _detected(matches[0], folder, files)


def _no_data_files(folder: Path) -> str:
    """One sentence for a folder without any data file (empty, or the folder above the extract), instead of every
    layout's files and columns: nothing in it was recognised because nothing in it is data."""
    holding = [sub.name for sub in sorted(folder.iterdir()) if sub.is_dir() and table_files(sub)]
    if holding:
        return (f"{folder} holds no data files, but its folder(s) {', '.join(holding)} do: give the one to load as "
                "the extract folder.")
    return (f"{folder} holds no data files ({', '.join(DATA_FILE_SUFFIXES)}): put the extract's files there, or give "
            "the folder that holds them; docs/extract_formats.md describes the layouts the ingest reads.")


def _detected(extract_format: ExtractFormat, folder: Path, files: dict[str, Path]) -> DetectedFormat:
    try:
        detected = extract_format.detect(folder, files)
    except LayoutError as error:
        raise LayoutError(f"{error}\n{expected_layouts()}") from error
    return dataclasses.replace(detected, folder=folder)
