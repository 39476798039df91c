"""`prepare_data`: one run from the checks to the published data dir, resumable in
`OUT.partial/` (see the package docstring for the steps)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tinyllama_cli.data.prepare.assemble import assemble
from tinyllama_cli.data.prepare.datadir import (
    INDEX,
    LOG,
    TOKENIZER,
    UNITS,
    check_source_names,
    manifest_warnings,
    work_dir,
)
from tinyllama_cli.data.prepare.decontaminate import (
    build_index,
    manifest_entry,
    settings_key,
)
from tinyllama_cli.data.prepare.options import (
    PrepareOptions,
    check_options,
    dtype_for,
    load_tokenizer,
)
from tinyllama_cli.data.prepare.pool import run_tasks
from tinyllama_cli.data.prepare.slices import Unit, all_units, fingerprint, run_settings, slice_of
from tinyllama_cli.data.prepare.tokenizer_training import train_on_sample
from tinyllama_cli.data.prepare.units import UnitTask, process_unit, unit_done, unit_stats_path
from tinyllama_cli.data.prepare.val_floor import group_share, move_to_val, raised_thresholds
from tinyllama_cli.data.sources import ReadOptions, Source, resolve_sources
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_dir, publish, remove, write_json
from tinyllama_cli.files import copy as copy_file

if TYPE_CHECKING:
    from tinyllama_cli.tokenizer import Tokenizer

SETTINGS = "settings.json"  # in OUT.partial: the fingerprint a rerun must match to resume


class ProgressSink(Protocol):
    """What `prepare_data` reports to (the CLI's rich progress bar implements it)."""

    def start(self, total_bytes: int, done_bytes: int, files: int, resumed: int) -> None: ...
    def advance(self, documents: int, tokens: int, nbytes: int) -> None: ...
    def stage(self, text: str) -> None: ...


@dataclass
class PrepareResult:
    out: Path
    manifest: dict
    files_processed: int
    files_resumed: int
    elapsed_s: float
    tokens_per_s: float = 0.0
    log_lines: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return manifest_warnings(self.manifest)

    def to_dict(self) -> dict:
        """What `prepare-data --json` prints: the run's figures, then the manifest."""
        return {
            "out": str(self.out),
            "files_processed": self.files_processed,
            "warnings": self.warnings,
            "files_resumed": self.files_resumed,
            "elapsed_s": self.elapsed_s,
            "tokens_per_s": self.tokens_per_s,
            "log_lines": self.log_lines,
            "manifest": self.manifest,
        }


def prepare_data(
    specs: list[str], o: PrepareOptions, progress: ProgressSink | None = None
) -> PrepareResult:
    """Tokenize the sources `specs` ([NAME=]PATH...) into the data dir `o.out` (see the package
    docstring)."""
    t0 = time.perf_counter()
    check_options(o)
    out = Path(o.out)
    sources = resolve_sources(specs)
    check_source_names([s.name for s in sources])
    if o.on_error == "fail":
        _fail_on_listing_problems(sources)
    tok = load_tokenizer(Path(o.tokenizer)) if o.tokenizer else None
    index = build_index(list(o.decontaminate), o.decontaminate_ngram) if o.decontaminate else None
    check_new_dir(out, o.overwrite)
    read_options = ReadOptions(o.text_field, tuple(o.exclude))
    tokenizer_key = (
        {"sha256": tok.sha256}
        if tok
        else {"train_vocab_size": o.vocab_size, "sample_mb": o.tokenizer_sample_mb}
    )
    settings = run_settings(sources, o, tokenizer_key, settings_key(index))
    groups = all_units(sources, o.shard_tokens)
    units = slice_of(groups, o.shard_index, o.num_shards)

    work = work_dir(out)
    _open_work_dir(work, fingerprint({**settings, "shard_index": o.shard_index}), settings, o)
    tok = _run_tokenizer(work / TOKENIZER, sources, read_options, o, progress)
    dtype = dtype_for(tok.vocab_size)
    if index:
        index.save(work / INDEX)
    index_path = work / INDEX if index else None
    stats, todo, encode_s = _encode_units(
        work, units, read_options, o, dtype, progress, index_path, keep=_keep(groups, o)
    )
    stats, again, again_s = _floor_val(
        work, groups, units, stats, read_options, o, dtype, progress, index_path
    )
    todo, encode_s = sorted(set(todo) | set(again)), encode_s + again_s
    if progress:
        progress.stage("writing shards")
    slice_info = (
        {"index": o.shard_index, "count": o.num_shards, "fingerprint": fingerprint(settings)}
        if o.num_shards > 1
        else None
    )
    decontamination = (
        manifest_entry(index, [st["contaminated_by"] for st in stats]) if index else None
    )
    manifest = assemble(
        work,
        sources,
        units,
        stats,
        o,
        settings,
        tok,
        dtype,
        {"slice": slice_info, "decontamination": decontamination},
    )
    remove(work / UNITS)
    (work / INDEX).unlink(missing_ok=True)
    (work / SETTINGS).unlink()
    publish(work, out)
    if progress:
        progress.stage("done")
    new_tokens = sum(sum(stats[i]["tokens"].values()) for i in todo)
    processed = sum(len(units[i].files) for i in todo)
    return PrepareResult(
        out=out,
        manifest=manifest,
        files_processed=processed,
        files_resumed=sum(len(u.files) for u in units) - processed,
        elapsed_s=time.perf_counter() - t0,
        tokens_per_s=new_tokens / encode_s if encode_s > 0 else 0.0,
        log_lines=(out / LOG).read_text().count("\n"),
    )


def _fail_on_listing_problems(sources: list[Source]) -> None:
    """--on-error fail: a glob that matched nothing stops the run before anything is written."""
    for s in sources:
        for reason, where, detail in s.problems:
            raise UserError(
                f"{where}: {reason} ({detail}); fix the pattern or run with --on-error skip"
            )


def _open_work_dir(work: Path, fingerprint: str, settings: dict, o: PrepareOptions) -> None:
    """Create `work`, or resume it when an earlier run with the same settings left it."""
    marker = work / SETTINGS
    if work.exists():
        previous = json.loads(marker.read_text()).get("fingerprint") if marker.is_file() else None
        if previous == fingerprint:
            return
        if not o.overwrite:
            raise UserError(
                f"{work} holds an unfinished run with other settings; pass --overwrite "
                "to discard it, or rerun with the same settings to resume"
            )
        remove(work)
    work.mkdir(parents=True)
    write_json(marker, {"fingerprint": fingerprint, "settings": settings}, indent=2)


def _run_tokenizer(
    path: Path,
    sources: list[Source],
    read_options: ReadOptions,
    o: PrepareOptions,
    progress: ProgressSink | None,
) -> Tokenizer:
    """The run's tokenizer at `path` in the work dir: `--tokenizer` copied, or one trained on a
    sample; done once, so a resumed run finds it there."""
    if o.tokenizer:
        if not path.is_file():
            copy_file(Path(o.tokenizer), path)
    elif not path.is_file():
        if progress:
            progress.stage("training the tokenizer")
        train_on_sample(sources, read_options, o, path)
    return load_tokenizer(path)


def _encode_units(
    work: Path,
    units: list[Unit],
    read_options: ReadOptions,
    o: PrepareOptions,
    dtype: str,
    progress: ProgressSink | None,
    index: Path | None,
    raised: dict[tuple[str, int], int] | None = None,
    keep: int = 0,
) -> tuple[list[dict], list[int], float]:
    """Encode every unit an earlier run did not finish (with `raised`: every unit not yet
    encoded at its val threshold, raised or not), recording each one's `keep` smallest document
    hashes. Returns the counts of all units, the indices of those encoded now, and the seconds
    that took."""
    base = round(o.val_fraction * 2**64)
    wanted = [None if raised is None else raised.get((u.source, u.index), base) for u in units]
    stats: list[dict | None] = [unit_done(work, u, w) for u, w in zip(units, wanted)]
    todo = [i for i, st in enumerate(stats) if st is None]
    tasks = [
        UnitTask(
            units[i],
            str(work),
            str(work / TOKENIZER),
            wanted[i] or base,
            read_options,
            o.on_error,
            o.fast_encode,
            dtype,
            o.shard_tokens,
            str(index) if index else None,
            keep,
        )
        for i in todo
    ]
    if progress:
        progress.start(
            sum(u.size for u in units),
            sum(u.size for u, st in zip(units, stats) if st),
            sum(len(u.files) for u in units),
            sum(len(u.files) for u, st in zip(units, stats) if st),
        )
        if raised is not None and todo:
            progress.stage(f"val floor: encoding {len(todo)} groups again at a raised threshold")
    report = progress.advance if progress else (lambda *a: None)
    t_encode = time.perf_counter()
    for i, st in zip(
        todo, run_tasks(process_unit, tasks, o.workers, report, [t.unit.size for t in tasks])
    ):
        stats[i] = st
    return stats, todo, time.perf_counter() - t_encode


def _floor_val(
    work: Path,
    all_groups: list[Unit],
    units: list[Unit],
    stats: list[dict],
    read_options: ReadOptions,
    o: PrepareOptions,
    dtype: str,
    progress: ProgressSink | None,
    index: Path | None,
) -> tuple[list[dict], list[int], float]:
    """Give the groups short of their share of the val floor their documents of smallest hash
    (`val_floor`), by moving tokens; a group whose shards are not as listed (a move cut short)
    is encoded again. Returns what `_encode_units` does for that pass."""
    raised = raised_thresholds(
        all_groups, units, stats, round(o.val_fraction * 2**64), o.val_min_docs
    )
    if not raised:
        return stats, [], 0.0
    if progress:
        progress.stage(f"val floor: moving documents of {len(raised)} groups to val")
    stats = list(stats)
    for i, u in enumerate(units):
        threshold = raised.get((u.source, u.index))
        if threshold is not None and stats[i]["val_threshold"] != threshold:
            moved = move_to_val(
                work, u, stats[i], threshold, dtype, o.shard_tokens, unit_stats_path(work, u)
            )
            if moved is not None:
                stats[i] = moved
    return _encode_units(
        work, units, read_options, o, dtype, progress, index, raised, _keep(all_groups, o)
    )


def _keep(all_groups: list[Unit], o: PrepareOptions) -> int:
    """How many smallest hashes a group records: the largest share of the floor of a source."""
    if not o.val_fraction or not all_groups:
        return 0
    return group_share(o.val_min_docs, min(Counter(g.source for g in all_groups).values()))
