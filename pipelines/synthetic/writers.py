"""Append chunks to the extract files: CSV (plain or gzip) via pyarrow's CSV writer, Parquet via ParquetWriter.

Output is byte-deterministic: no timestamps anywhere (gzip mtime 0, no file name in the gzip header; Parquet
metadata carries only the schema and the writer version).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines import extract_spec as spec

from .defects import PlantedTable
from .render import arrow_schema

GZIP_LEVEL = 3  # fast; the extract is generated more often than it is shipped
PARQUET_COMPRESSION = "zstd"
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", delimiter=",")


def file_name(table: str, fmt: str) -> str:
    return f"{table}.{fmt}"


def csv_payload(planted: PlantedTable) -> bytes:
    """The chunk's CSV lines: the typed rows written by pyarrow, with the text-only defect lines spliced in."""
    sink = pa.BufferOutputStream()
    if planted.table.num_rows:
        pacsv.write_csv(planted.table, sink, CSV_OPTIONS)
    data = sink.getvalue()
    if not planted.text_lines:
        return data.to_pybytes()
    view = memoryview(data)
    line_ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    order = np.argsort(planted.text_after, kind="stable")
    cut_after = planted.text_after[order]
    cuts = np.where(cut_after > 0, line_ends[np.maximum(cut_after - 1, 0)], 0)
    pieces: list[bytes | memoryview] = []
    previous = 0
    # One piece per defect line (defects are ~0.1% of rows): splice them between the typed rows.
    for cut, line_index in zip(cuts.tolist(), order.tolist()):
        pieces.append(view[previous:cut])
        pieces.append((planted.text_lines[line_index] + "\n").encode("utf-8"))
        previous = cut
    pieces.append(view[previous:])
    return b"".join(pieces)


def write_part(path: Path, payload: bytes | pa.Table) -> Path:
    """A worker's chunk payload as a part file: CSV bytes as they are, a table as an Arrow IPC file."""
    if isinstance(payload, pa.Table):
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, payload.schema) as writer:
            writer.write_table(payload)
    else:
        path.write_bytes(payload)
    return path


class TableWriter:
    def __init__(self, out_dir: Path, table: spec.Table, fmt: str) -> None:
        self.table = table
        self.fmt = fmt
        self.path = out_dir / file_name(table.name, fmt)
        self.rows = 0
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(self.path, arrow_schema(table), compression=PARQUET_COMPRESSION)
        else:
            self._raw = open(self.path, "wb")
            self._stream = (gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0,
                                          compresslevel=GZIP_LEVEL) if fmt == "csv.gz" else self._raw)
            self._stream.write((",".join(table.column_names) + "\n").encode("utf-8"))

    def write(self, payload: bytes | pa.Table | Path, rows: int) -> None:
        """Append one chunk: bytes or a table in memory, or a part file written by a worker (then deleted)."""
        if isinstance(payload, Path):
            if self.fmt == "parquet":
                with pa.memory_map(str(payload)) as source:
                    self.write(pa.ipc.open_file(source).read_all(), rows)
            else:
                with open(payload, "rb") as part:
                    if self._stream is self._raw:  # plain CSV: let the kernel copy the bytes
                        self._raw.flush()
                        size = os.fstat(part.fileno()).st_size
                        offset = 0
                        while offset < size:
                            offset += os.sendfile(self._raw.fileno(), part.fileno(), offset, size - offset)
                    else:
                        shutil.copyfileobj(part, self._stream, 1 << 24)
                self.rows += rows
            payload.unlink()
            return
        if self.fmt == "parquet":
            if payload.num_rows:
                self._parquet.write_table(payload)
        else:
            self._stream.write(payload)
        self.rows += rows

    def close(self) -> None:
        if self.fmt == "parquet":
            if self.rows == 0:  # ParquetWriter writes a valid empty file only after one (empty) table
                self._parquet.write_table(arrow_schema(self.table).empty_table())
            self._parquet.close()
        else:
            if self._stream is not self._raw:
                self._stream.close()
            self._raw.close()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class DeferredRows:
    """Rows of one table held back, chunk by chunk, in a part file, and appended after every chunk's own rows
    (the negative-control records: written last, so every other row keeps its bytes and its line number)."""

    def __init__(self, path: Path, table: spec.Table, fmt: str) -> None:
        self.path = path
        self.table = table
        self.fmt = fmt
        self.rows = 0
        self._file = open(path, "wb")
        self._ipc: pa.ipc.RecordBatchStreamWriter | None = None

    def add(self, payload: bytes | pa.Table | Path, rows: int) -> None:
        """One chunk's rows: CSV bytes or a table, in memory or in a worker's part file (then deleted)."""
        if isinstance(payload, Path):
            if self.fmt == "parquet":
                with pa.memory_map(str(payload)) as source:
                    self.add(pa.ipc.open_file(source).read_all(), rows)
            else:
                with open(payload, "rb") as part:
                    shutil.copyfileobj(part, self._file, 1 << 24)
                self.rows += rows
            payload.unlink()
            return
        if self.fmt == "parquet":
            if self._ipc is None:
                self._ipc = pa.ipc.new_stream(self._file, arrow_schema(self.table))
            self._ipc.write_table(payload)
        else:
            self._file.write(payload)
        self.rows += rows

    def append_to(self, writer: TableWriter) -> None:
        """Append the held rows to the table's file and delete the part file."""
        if self._ipc is not None:
            self._ipc.close()
        self._file.close()
        if self.fmt == "parquet":
            if self._ipc is not None:
                with pa.memory_map(str(self.path)) as source:
                    writer.write(pa.ipc.open_stream(source).read_all(), self.rows)
            self.path.unlink()
        else:
            writer.write(self.path, self.rows)  # copies the bytes and deletes the part file

    def discard(self) -> None:
        if self._ipc is not None:
            self._ipc.close()
        self._file.close()
        self.path.unlink(missing_ok=True)
