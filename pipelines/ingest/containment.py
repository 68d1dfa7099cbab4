"""Keeping every read inside the folder it belongs to.

An extract folder (and the landing folder of extract drops) comes from outside the team: whoever writes it chooses
the file names in `extract_mapping.yaml` and may leave symbolic links in it. A file the pipeline reads must be the
folder's own, so that a mapping or a link cannot make the pipeline copy another file of the server (another site's
extract, /etc/passwd) into the published database or print it in an error. The rule, for every file an extract or a
drop names: a relative path, no `..` component, and its real path (every symbolic link followed) inside the real path
of the folder. Links that stay inside the folder are followed.

The check is made before the file is opened; errors name the file as the extract names it and never show its
content.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath


class OutsideFolderError(ValueError):
    """A file an extract or a drop names would be read from outside its folder."""


def inside_folder(folder: Path, name: str | PurePath, what: str = "file") -> Path:
    """``folder / name`` when it stays inside ``folder``; OutsideFolderError otherwise.

    ``name`` is a path relative to the folder (an extract's table file, a mapping's ``file:`` entry). It is refused
    when absolute, when it has a ``..`` component, and when its real path (symbolic links followed, whether the
    file exists or not) is not inside the folder's real path. The path returned is the one the extract names (not the
    link's target), so that file names shown in rejects and the manifest are the extract's own.
    """
    if not isinstance(name, (str, PurePath)) or str(name) == "":
        raise OutsideFolderError(f"{what} {name!r}: expected a file name relative to {folder}")
    relative = PurePath(name)
    if relative.is_absolute() or relative.anchor:
        raise OutsideFolderError(f"{what} {str(name)!r} is an absolute path: name a file inside {folder}")
    if ".." in relative.parts:
        raise OutsideFolderError(f"{what} {str(name)!r} leads out of its folder with '..': name a file inside "
                                 f"{folder}")
    path = Path(folder) / relative
    if not is_inside(Path(folder), path):
        raise OutsideFolderError(f"{what} {str(name)!r} is a symbolic link (or inside one) leading outside {folder}: "
                                 "copy the file into the folder instead of linking to it")
    return path


def is_inside(folder: Path, path: Path) -> bool:
    """Whether ``path``'s real path (symbolic links followed) is ``folder``'s real path or lies under it."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def links_leading_out(folder: Path) -> list[str]:
    """Every symbolic link under ``folder`` (at any depth, links to folders not entered) whose target is outside it,
    as a path relative to ``folder``, in name order."""
    folder = Path(folder)
    leading_out = []
    for directory, subfolders, files in os.walk(folder, followlinks=False):
        for name in sorted(subfolders + files):
            path = Path(directory) / name
            if path.is_symlink() and not is_inside(folder, path):
                leading_out.append(str(path.relative_to(folder)))
    return sorted(leading_out)
