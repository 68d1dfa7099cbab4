"""Reading SQL models from sql/.

SQL lives in files, one model per file, in layers (sql/staging, sql/intermediate, sql/marts). A model file is plain
SQL; where it needs run-time values it names them as DuckDB prepared-statement parameters ($name), never through
string formatting.
"""

from __future__ import annotations

from functools import lru_cache

from pipelines.paths import SQL_DIR


@lru_cache(maxsize=None)
def read_sql(relative_path: str) -> str:
    """The text of sql/<relative_path>."""
    return (SQL_DIR / relative_path).read_text()
