"""Input sources for prepare-data: find the files behind `[NAME=]PATH` and read each one as
documents.

Every reader yields `Record`s: either a document's text or the reason it was skipped, always
with its place (1-based line for JSON lines, row for tables, record index for a JSON array) so
the log can name `file:line`. Readers never raise on bad data; they report it and go on, and
the caller decides (``--on-error skip|fail``). Memory stays bounded: compressed and plain JSON
lines are read in blocks, parquet one row group at a time, Arrow one record batch at a time; a
.txt file (one document) is read whole as a `Record` here, or in pieces by `Reader.txt_pieces`,
which is how prepare-data streams it.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson

from tinyllama_cli.errors import UserError

# Why a record or a file was skipped; the manifest and the log use these names.
INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"
EXCLUDED = "excluded"
TRUNCATED_FILE = "truncated_file"
CORRUPT_FILE = "corrupt_file"
GLOB_NO_MATCH = "glob_no_match"

# Hub datasets: `hf:NAME[:CONFIG[:SPLIT]]`, streamed through `datasets` one shard (data file) per
# input file, named `<spec>/shard-IIIII-of-NNNNN`.
HUB = "hf"
# A hub shard's nominal size, for grouping, slicing and progress: as large as a full group at the
# default --shard-tokens, so each shard is a group of its own (one worker streams it).
HUB_SHARD_BYTES = 1 << 28
_HUB_SHARD = re.compile(r"(?P<spec>.+)/shard-(?P<index>\d{5})-of-(?P<count>\d{5})")

# File kinds by suffix; the longest suffix wins (".jsonl.zst" before ".zst").
SUFFIXES = {
    ".jsonl.zst": "jsonl.zst",
    ".json.zst": "jsonl.zst",
    ".jsonl.gz": "jsonl.gz",
    ".json.gz": "jsonl.gz",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "txt",
    ".arrow": "arrow",
}
DEFAULT_TEXT_FIELDS = ("text", "content")
BLOCK = 1 << 22  # bytes read at a time from (de)compressed line files
# Compressed input is decompressed this much at a time, so that a damaged stream (cut short, or
# zero-filled past the break as a preallocated download leaves it) loses only the records of
# the last piece: decompressing a whole block raises and returns nothing of it.
PIECE = 1 << 14
# A large .txt document is read and encoded this many bytes at a time (`Reader.txt_pieces`).
TXT_PIECE = 1 << 18


@dataclass(frozen=True)
class InputFile:
    """One input file and how to read it (or one shard of a hub dataset's stream, kind `hf`)."""

    path: str
    kind: str

    @property
    def size(self) -> int:
        return self.stat()[0]

    def stat(self) -> tuple[int, int]:
        """(bytes, mtime in ns): what a resumed run compares. A hub shard's size is unknown
        before it is streamed: it counts as `HUB_SHARD_BYTES`, and it has no mtime."""
        if self.kind == HUB:
            return HUB_SHARD_BYTES, 0
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns


@dataclass
class Source:
    """A named source: its input files in a fixed (sorted) order, plus problems found while
    listing them (a glob that matched nothing)."""

    name: str
    spec: str
    files: list[InputFile] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (reason, where, detail)


class Record(NamedTuple):
    """A document (`text`) or a skipped record (`reason`, `detail`), at `line` of its file."""

    line: int
    text: str | None
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ReadOptions:
    text_field: str | None = None  # None: "text", else "content"
    exclude: tuple[tuple[str, str], ...] = ()  # (meta key, value) pairs whose records are skipped

    def fields(self) -> tuple[str, ...]:
        return (self.text_field,) if self.text_field else DEFAULT_TEXT_FIELDS


# --- finding the files ---------------------------------------------------------------------------


def kind_of(path: str) -> str | None:
    name = path.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def parse_spec(spec: str) -> tuple[str | None, str]:
    """`NAME=PATH` -> (NAME, PATH); a bare PATH -> (None, PATH). A `=` later in a path is kept."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and os.sep not in name:
        return name, path
    return None, spec


def default_name(path: str) -> str:
    """The stem of a file or directory (`data/slim.jsonl.zst` -> `slim`), used when no NAME= is
    given."""
    base = Path(path.rstrip("/\\")).name or "data"
    kind = kind_of(base)
    if kind:
        for suffix in sorted(SUFFIXES, key=len, reverse=True):
            if base.lower().endswith(suffix):
                return base[: -len(suffix)] or "data"
    return base


def is_saved_dataset(path: Path) -> bool:
    """A directory written by `datasets.Dataset(Dict).save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def saved_dataset_files(path: Path) -> list[InputFile]:
    """The Arrow files of a saved Dataset, or of every split of a saved DatasetDict in its order."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        return [f for split in splits for f in saved_dataset_files(path / split)]
    state = json.loads((path / "state.json").read_text())
    if state.get("_indices_data_files"):
        raise UserError(
            f"{path} is a saved dataset with an indices mapping; save it again after "
            "`dataset.flatten_indices()`"
        )
    return [InputFile(str(path / f["filename"]), "arrow") for f in state["_data_files"]]


def list_files(path: str) -> tuple[list[InputFile], list[tuple[str, str, str]]]:
    """The input files behind one PATH (file, directory, glob or saved dataset), sorted.

    A missing file or directory is a `UserError` (nothing is written yet); a glob that matches
    no supported file is returned as a problem, for `--on-error` to decide.
    """
    if path.startswith(HUB + ":"):
        return hub_shards(path), []
    if glob.has_magic(path):
        matches = sorted(
            p for p in glob.glob(path, recursive=True) if os.path.isfile(p) and kind_of(p)
        )
        if not matches:
            detail = "the pattern matched no .jsonl/.jsonl.zst/.json/.parquet/.txt/.arrow file"
            return [], [(GLOB_NO_MATCH, path, detail)]
        return [InputFile(p, kind_of(p)) for p in matches], []
    p = Path(path)
    if p.is_file():
        kind = kind_of(path)
        if kind is None:
            raise UserError(
                f"{path} is not a supported input; use .jsonl, .jsonl.zst, .json, "
                ".parquet, .txt or a saved `datasets` directory"
            )
        return [InputFile(path, kind)], []
    if p.is_dir():
        if is_saved_dataset(p):
            return saved_dataset_files(p), []
        found = []
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                full = os.path.join(root, name)
                if not name.startswith(".") and kind_of(name):
                    found.append(full)
        if not found:
            raise UserError(
                f"directory {path} has no .jsonl, .jsonl.zst, .json, .parquet or .txt "
                "files; point at the data files"
            )
        return [InputFile(f, kind_of(f)) for f in sorted(found)], []
    looks_like_hub_name = re.fullmatch(r"[\w-]+/[\w.-]+", path) and not kind_of(path)
    hint = (
        (
            f" (stream a hub dataset as hf:{path}[:CONFIG[:SPLIT]], or save it with "
            "`save_to_disk` and pass that directory)"
        )
        if looks_like_hub_name
        else ""
    )
    raise UserError(f"input {path} does not exist{hint}; check the path")


def hub_parts(path: str) -> tuple[str, str | None, str]:
    """`hf:NAME[:CONFIG[:SPLIT]]` -> (NAME, CONFIG or None, SPLIT, by default train)."""
    name, _, rest = path[len(HUB) + 1 :].partition(":")
    config, _, split = rest.partition(":")
    if not name:
        raise UserError(f"{path}: name the dataset, hf:NAME[:CONFIG[:SPLIT]]")
    return name, config or None, split or "train"


_HUB_STREAMS: dict = {}  # a process's open hub streams, by (name, config, split)


def hub_stream(path: str):
    """The `datasets` IterableDataset of a hub spec (opened once per process). NAME may be a
    hub id or a local folder of data files: `load_dataset` resolves both the same way."""
    key = hub_parts(path)
    if key not in _HUB_STREAMS:
        import datasets

        name, config, split = key
        try:
            _HUB_STREAMS[key] = datasets.load_dataset(name, config, split=split, streaming=True)
        except Exception as exc:  # noqa: BLE001 - the hub, the network and datasets raise many
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(
                f"{path}: cannot stream it with datasets ({type(exc).__name__}: "
                f"{first}); check the name, config and split, and the network"
            ) from None
    return _HUB_STREAMS[key]


def hub_shards(path: str) -> list[InputFile]:
    """A hub dataset's stream as one input file per shard, in the dataset's order."""
    count = hub_stream(path).n_shards
    return [InputFile(f"{path}/shard-{i:05d}-of-{count:05d}", HUB) for i in range(count)]


def resolve_sources(specs: list[str]) -> list[Source]:
    """Parse `[NAME=]PATH` specs; the same NAME given twice adds its paths to one source."""
    if not specs:
        raise UserError("no input given; pass one or more [NAME=]PATH sources")
    by_name: dict[str, Source] = {}
    for spec in specs:
        name, path = parse_spec(spec)
        named = hub_parts(path)[0] if path.startswith(HUB + ":") else path
        name = name or default_name(named.split("*")[0] if glob.has_magic(named) else named)
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UserError(
                f"source name {name!r} must be letters, digits, '-', '_' or '.'; "
                "give one with NAME=PATH"
            )
        files, problems = list_files(path)
        source = by_name.setdefault(name, Source(name, spec))
        if source.spec != spec:
            source.spec += " " + spec
        source.files += files
        source.problems += problems
    return list(by_name.values())


# --- reading the files ---------------------------------------------------------------------------


class Reader:
    """Iterates the records of one input file; `bytes_done` tracks progress through it."""

    def __init__(self, f: InputFile, options: ReadOptions, block: int = BLOCK):
        self.file = f
        self.options = options
        self.block = block  # bytes read at a time (a reader of a file's start wants fewer)
        self.bytes_done = 0

    def __iter__(self) -> Iterator[Record]:
        return getattr(self, "_read_" + self.file.kind.replace(".", "_"))()

    # JSON lines, plain or compressed ------------------------------------------------------------

    def _read_jsonl(self) -> Iterator[Record]:
        with open(self.file.path, "rb") as fh:
            yield from self._lines(self._plain_blocks(fh))

    def _read_jsonl_gz(self) -> Iterator[Record]:
        with open(self.file.path, "rb") as raw, gzip.GzipFile(fileobj=raw) as fh:

            def blocks():
                while True:
                    try:  # small reads: a damaged stream loses at most one of them
                        block = fh.read(PIECE)
                    except (EOFError, OSError, gzip.BadGzipFile) as exc:
                        yield exc
                        return
                    self.bytes_done = raw.tell()
                    if not block:
                        return
                    yield block

            yield from self._lines(blocks())

    def _read_jsonl_zst(self) -> Iterator[Record]:
        with open(self.file.path, "rb") as fh:

            def raw_blocks():
                while raw := fh.read(self.block):
                    self.bytes_done = fh.tell()
                    yield raw

            yield from self._lines(zstd_blocks(raw_blocks()))

    def _plain_blocks(self, fh) -> Iterator[bytes]:
        while True:
            block = fh.read(self.block)
            self.bytes_done = fh.tell()
            if not block:
                return
            yield block

    def _lines(self, blocks: Iterator[bytes | Exception]) -> Iterator[Record]:
        """Split blocks into lines and parse each; an exception in the stream ends the file
        with a `truncated_file` record (the incomplete last line is part of that). A line longer
        than a block is gathered in a list, so it costs one copy whatever its length."""
        line_no = 0
        rest: list[bytes] = []  # the start of a line that has not ended yet
        for block in blocks:
            if isinstance(block, Exception):
                yield Record(line_no + 1, None, TRUNCATED_FILE, f"{type(block).__name__}: {block}")
                return
            if b"\n" not in block:
                rest.append(block)
                continue
            lines = block.split(b"\n")
            if rest:
                lines[0] = b"".join([*rest, lines[0]])
            last = lines.pop()
            rest = [last] if last else []
            for line in lines:
                line_no += 1
                if line.strip():
                    yield self._parse_json_line(line_no, line)
        tail = b"".join(rest)
        if tail.strip():
            yield self._parse_json_line(line_no + 1, tail)

    def _parse_json_line(self, line_no: int, line: bytes) -> Record:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return _unparsable(line, exc, line_no)
        return self._from_object(line_no, obj)

    def _from_object(self, line_no: int, obj) -> Record:
        if not isinstance(obj, dict):
            return Record(
                line_no, None, MISSING_TEXT, f"a JSON {type(obj).__name__}, not an object"
            )
        for name in self.options.fields():
            text = obj.get(name)
            if text is not None:
                break
        else:
            return Record(
                line_no, None, MISSING_TEXT, f"no field {' or '.join(self.options.fields())}"
            )
        if not isinstance(text, str):
            return Record(line_no, None, MISSING_TEXT, f"field {name} is a {type(text).__name__}")
        if self.options.exclude:
            meta = obj.get("meta")
            meta = meta if isinstance(meta, dict) else {}
            for key, value in self.options.exclude:
                if str(meta.get(key, obj.get(key))) == value:
                    return Record(line_no, None, EXCLUDED, f"{key}={value}")
        if not text.strip():
            return Record(line_no, None, EMPTY_TEXT, "")
        return Record(line_no, text)

    # A JSON file: an array of records, or JSON lines under a .json name ---------------------------

    def _read_json(self) -> Iterator[Record]:
        with open(self.file.path, "rb") as fh:
            head = fh.read(4096).lstrip()
        if not head.startswith(b"["):
            yield from self._read_jsonl()
            return
        with open(self.file.path, "rb") as fh:
            yield from self._array_items(JsonArrayItems(self._text_blocks(fh)))

    def _text_blocks(self, fh) -> Iterator[str | Exception]:
        """The file's text, a block at a time; invalid UTF-8 ends it with the error."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        for block in self._plain_blocks(fh):
            try:
                yield decoder.decode(block)
            except UnicodeDecodeError as exc:
                yield exc
                return
        try:
            yield decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            yield exc

    def _array_items(self, items: JsonArrayItems) -> Iterator[Record]:
        for i, item in enumerate(items, 1):
            if isinstance(item, UnicodeDecodeError):
                yield Record(i, None, INVALID_UTF8, str(item))
                return
            if isinstance(item, ValueError):
                yield Record(i, None, INVALID_JSON, str(item))
                return
            yield self._from_object(i, item)

    # Plain text: one file is one document (read whole here; `txt_pieces` streams it) -----------

    def _read_txt(self) -> Iterator[Record]:
        data = Path(self.file.path).read_bytes()
        self.bytes_done = len(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Record(data.count(b"\n", 0, exc.start) + 1, None, INVALID_UTF8, str(exc))
            return
        yield Record(1, text) if text.strip() else Record(1, None, EMPTY_TEXT, "")

    def txt_pieces(self, size: int | None = None) -> Iterator[str | Record]:
        """A .txt file's text in pieces of about `size` bytes (`TXT_PIECE`), read a block at a
        time: what a document too large to hold is streamed as. Each piece but the first
        starts with a run of spaces (never cut inside a run, nor inside a character), which is
        where the word-cached encoding and the decontamination's words split anyway. Invalid
        UTF-8 ends the pieces with the `invalid_utf8` record `_read_txt` gives for the file.

        A piece holds at least one space-free stretch whole, so a file with no spaces in a
        long stretch makes that piece as large."""
        size = size or TXT_PIECE
        decoder = codecs.getincrementaldecoder("utf-8")()
        buf, done, lines = "", 0, 0  # text not yielded; bytes decoded; newlines yielded
        with open(self.file.path, "rb") as fh:
            while True:
                block = fh.read(size)
                self.bytes_done = fh.tell()
                pending = len(decoder.getstate()[0])
                try:
                    buf += decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    before = lines + buf.count("\n") + exc.object.count(b"\n", 0, exc.start)
                    yield _invalid_utf8(exc, done - pending, before + 1)
                    return
                done += len(block)
                cut = _piece_end(buf) if block else len(buf)
                if cut:
                    lines += buf.count("\n", 0, cut)
                    yield buf[:cut]
                    buf = buf[cut:]
                if not block:
                    return

    # A hub dataset's shard, streamed through `datasets`
    # --------------------------------------------

    def _read_hf(self) -> Iterator[Record]:
        m = _HUB_SHARD.fullmatch(self.file.path)
        stream = hub_stream(m["spec"]).shard(num_shards=int(m["count"]), index=int(m["index"]))
        rows = iter(stream)
        row = 0
        while True:
            try:
                obj = next(rows)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - a broken stream ends the shard
                yield Record(row + 1, None, CORRUPT_FILE, f"{type(exc).__name__}: {exc}")
                break
            row += 1
            yield self._from_object(row, obj)
        self.bytes_done = HUB_SHARD_BYTES

    # Tables: parquet by row group, Arrow (saved datasets) by record batch ------------------------

    def _read_parquet(self) -> Iterator[Record]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.file.path)
            names = pf.schema_arrow.names
            groups = pf.metadata.num_row_groups
            sizes = [pf.metadata.row_group(i).total_byte_size for i in range(groups)]
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            yield Record(0, None, CORRUPT_FILE, f"{type(exc).__name__}: {exc}")
            return
        columns = self._table_columns(names)
        if columns is None:
            yield Record(0, None, MISSING_TEXT, f"no column {' or '.join(self.options.fields())}")
            return
        row = 0
        total = max(sum(sizes), 1)
        file_size = self.file.size
        for i in range(groups):
            try:
                table = pf.read_row_group(i, columns=columns)
            except Exception as exc:  # noqa: BLE001 - any damage ends the file
                yield Record(
                    row + 1, None, CORRUPT_FILE, f"row group {i}: {type(exc).__name__}: {exc}"
                )
                return
            yield from self._table_rows(table, columns, row)
            row += table.num_rows
            self.bytes_done = file_size * sum(sizes[: i + 1]) // total

    def _read_arrow(self) -> Iterator[Record]:
        import pyarrow as pa

        try:
            source = pa.memory_map(self.file.path)
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(source)
            batches = (
                (reader.get_batch(i) for i in range(reader.num_record_batches))
                if isinstance(reader, pa.ipc.RecordBatchFileReader)
                else iter(reader)
            )
            columns = self._table_columns(reader.schema.names)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            yield Record(0, None, CORRUPT_FILE, f"{type(exc).__name__}: {exc}")
            return
        if columns is None:
            yield Record(0, None, MISSING_TEXT, f"no column {' or '.join(self.options.fields())}")
            return
        row = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - any damage ends the file
                yield Record(row + 1, None, CORRUPT_FILE, f"{type(exc).__name__}: {exc}")
                return
            table = pa.Table.from_batches([batch]).select(columns)
            yield from self._table_rows(table, columns, row)
            row += batch.num_rows
        self.bytes_done = self.file.size

    def _table_columns(self, names: list[str]) -> list[str] | None:
        text = next((n for n in self.options.fields() if n in names), None)
        if text is None:
            return None
        return [text] + [key for key, _ in self.options.exclude if key in names and key != text]

    def _table_rows(self, table, columns: list[str], first_row: int) -> Iterator[Record]:
        texts = table.column(columns[0]).to_pylist()
        others = {name: table.column(name).to_pylist() for name in columns[1:]}
        for i, text in enumerate(texts):
            line = first_row + i + 1
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield Record(line, None, INVALID_UTF8, str(exc))
                    continue
            if not isinstance(text, str):
                yield Record(
                    line,
                    None,
                    MISSING_TEXT,
                    f"{columns[0]} is null"
                    if text is None
                    else f"{columns[0]} is a {type(text).__name__}",
                )
                continue
            excluded = next(
                (
                    f"{k}={v}"
                    for k, v in self.options.exclude
                    if k in others and str(others[k][i]) == v
                ),
                None,
            )
            if excluded:
                yield Record(line, None, EXCLUDED, excluded)
            elif not text.strip():
                yield Record(line, None, EMPTY_TEXT, "")
            else:
                yield Record(line, text)


class JsonArrayItems:
    """The items of a JSON array read from text blocks, one at a time: memory holds the current
    block and item, not the file. An item that does not parse (or the array's end missing) ends
    the items with a `ValueError` naming the line; an exception among the blocks is passed on."""

    def __init__(self, blocks: Iterator[str | Exception]):
        self.blocks = blocks
        self.buf = ""
        self.pos = 0
        self.line = 1  # of self.pos
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _more(self) -> Exception | None:
        """Read the next block (dropping the parsed part of the buffer); a block's error."""
        block = next(self.blocks, None)
        if block is None:
            self.eof = True
            return None
        if isinstance(block, Exception):
            self.eof = True
            return block
        self.line += self.buf.count("\n", 0, self.pos)
        self.buf, self.pos = self.buf[self.pos :] + block, 0
        return None

    def _skip_space(self) -> Exception | None:
        """Move past whitespace, reading blocks as needed; the error of a failed block read."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return None
            if error := self._more():
                return error

    def _error(self, what: str) -> ValueError:
        line = self.line + self.buf.count("\n", 0, self.pos)
        return ValueError(f"{what} (line {line})")

    def __iter__(self) -> Iterator[object]:
        if (error := self._skip_space()) or not self.buf.startswith("[", self.pos):
            yield error or self._error("not a JSON array")
            return
        self.pos += 1
        first = True
        while True:
            if error := self._skip_space():
                yield error
                return
            if self.buf.startswith("]", self.pos):
                return
            if not first:
                if not self.buf.startswith(",", self.pos):
                    yield self._error("expected ',' or ']' between the array's items")
                    return
                self.pos += 1
                if error := self._skip_space():
                    yield error
                    return
            first = False
            item = self._item()
            yield item
            if isinstance(item, Exception):
                return

    def _item(self) -> object:
        """The item at `pos`, reading blocks until it is complete (a cut item fails to parse)."""
        while True:
            try:
                item, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    return self._error(f"invalid JSON: {exc.msg}")
                # Read until the unparsed text doubles, so a huge item is parsed a few times,
                # not once per block.
                want = 2 * (len(self.buf) - self.pos) + 1
                while not self.eof and len(self.buf) - self.pos < want:
                    if error := self._more():
                        return error
                continue
            if end == len(self.buf) and not self.eof and not isinstance(item, (dict, list, str)):
                if error := self._more():  # a number may go on in the next block
                    return error
                continue
            self.pos = end
            return item


def zstd_blocks(raw_blocks: Iterator[bytes]) -> Iterator[bytes | Exception]:
    """The decompressed bytes of a zstd stream of one or more frames, `PIECE` bytes of input at a
    time; a damaged or truncated stream ends with the exception (after everything before it).

    Frames are decompressed one by one with `decompressobj` (the stream reader stops silently at
    the end of a truncated frame, so a cut-short file would look complete)."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    frame = None  # the frame being decompressed, None between frames
    for raw in raw_blocks:
        view = memoryview(raw)
        for start in range(0, len(view), PIECE):
            data = view[start : start + PIECE].tobytes()
            while data:
                if frame is None:
                    frame = dctx.decompressobj()
                try:
                    out = frame.decompress(data)
                except zstandard.ZstdError as exc:
                    yield exc
                    return
                if out:
                    yield out
                data = b""
                if frame.eof:
                    data, frame = frame.unused_data, None
    if frame is not None:
        yield EOFError("the zstd stream ends in the middle of a frame")


def _piece_end(text: str) -> int:
    """Where `text` may be cut: the start of its last run of spaces (`\u2581` counts, as in the
    encoder) that follows another character; 0 when there is none."""
    end = len(text)
    while (i := max(text.rfind(" ", 0, end), text.rfind("\u2581", 0, end))) > 0:
        while i > 0 and text[i - 1] in " \u2581":
            i -= 1
        if i > 0:
            return i
        end = i
    return 0


def _invalid_utf8(exc: UnicodeDecodeError, offset: int, line: int) -> Record:
    """The `invalid_utf8` record of a whole-file decode, from an incremental decoder's error on
    bytes starting at file offset `offset`: the message names file positions, as
    `bytes.decode` on the whole file would."""
    start, end = offset + exc.start, offset + exc.end
    if exc.end - exc.start == 1:
        where = f"byte 0x{exc.object[exc.start]:02x} in position {start}"
    else:
        where = f"bytes in position {start}-{end - 1}"
    return Record(line, None, INVALID_UTF8, f"'utf-8' codec can't decode {where}: {exc.reason}")


def read_records(f: InputFile, options: ReadOptions) -> Iterator[Record]:
    """The records of one file, in file order (see `Reader`)."""
    return iter(Reader(f, options))


def _unparsable(data: bytes, error: orjson.JSONDecodeError, line_no: int | None = None) -> Record:
    """Why JSON bytes did not parse: invalid UTF-8 (at the line of the first bad byte) or invalid
    JSON (at `line_no` for one JSON line, else where the parser stopped)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(line_no or data.count(b"\n", 0, exc.start) + 1, None, INVALID_UTF8, str(exc))
    return Record(line_no or error.lineno, None, INVALID_JSON, str(error))
