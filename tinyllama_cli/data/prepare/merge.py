"""`merge-data`: the data dirs of `--shard-index 0..K-1 --num-shards K` combined into one.

Slices are contiguous runs of the global order of groups, and a group's shards are named by its
place in its source, the same in every slice. So the merged dir takes the slices' shards as they
are (hard links where the filesystem allows, else copies), and concatenating the slices' shard
lists, logs and file listings in slice order gives, byte for byte, the data dir an unsliced run
would write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tinyllama_cli.data.prepare.datadir import (
    FILES,
    LOG,
    MANIFEST,
    SPLITS,
    TOKENIZER,
    add_counts,
    new_source_entry,
    work_dir,
)
from tinyllama_cli.errors import UserError
from tinyllama_cli.files import check_new_dir, link_or_copy, publish, remove, write_json
from tinyllama_cli.files import copy as copy_file

Slice = tuple[Path, dict]  # (data dir, its manifest)


def merge_data(slice_dirs: Iterable[str | Path], out: str | Path, overwrite: bool = False) -> dict:
    """Combine the data dirs of `--shard-index 0..K-1 --num-shards K` into one data dir, byte for
    byte the one an unsliced run would have written."""
    out = Path(out)
    ordered = _read_slices([Path(d) for d in slice_dirs])
    check_new_dir(out, overwrite)
    first = ordered[0][1]
    work = work_dir(out)
    remove(work)
    work.mkdir(parents=True)
    copy_file(ordered[0][0] / TOKENIZER, work / TOKENIZER)
    sources = {
        name: _merge_source(work, name, entry["spec"], ordered)
        for name, entry in first["sources"].items()
    }
    manifest = {k: v for k, v in first.items() if k != "slice"}
    manifest.update(sources=sources)
    if "decontamination" in first:
        manifest["decontamination"] = _merge_decontamination([m for _, m in ordered])
    for name in (LOG, FILES):
        with open(work / name, "wb") as fh:
            fh.writelines((d / name).read_bytes() for d, _ in ordered)
    write_json(work / MANIFEST, manifest, indent=2)
    publish(work, out)
    return manifest


def _read_slices(dirs: list[Path]) -> list[Slice]:
    """The slices in index order, after checking that they are all of one run, each once."""
    manifests = []
    for d in dirs:
        if not (d / MANIFEST).is_file():
            raise UserError(f"{d} has no {MANIFEST}; pass the --out dirs of finished sliced runs")
        m = json.loads((d / MANIFEST).read_text())
        if "slice" not in m:
            raise UserError(
                f"{d} is not a slice (it was not written with --num-shards); nothing to merge"
            )
        manifests.append(m)
    count = manifests[0]["slice"]["count"]
    fingerprints = {m["slice"]["fingerprint"] for m in manifests}
    if len(fingerprints) > 1:
        raise UserError(
            "the slices were prepared with different inputs or settings; rerun them alike"
        )
    if len({m["tokenizer"]["sha256"] for m in manifests}) > 1:
        raise UserError(
            "the slices used different tokenizers; prepare them all with the same --tokenizer"
        )
    by_index = {m["slice"]["index"]: (d, m) for d, m in zip(dirs, manifests)}
    if sorted(by_index) != list(range(count)) or len(dirs) != count:
        got = sorted(m["slice"]["index"] for m in manifests)
        raise UserError(f"need each of the {count} slices exactly once, got indices {got}")
    return [by_index[i] for i in range(count)]


def _merge_decontamination(manifests: list[dict]) -> dict:
    """The slices' `decontamination` with the documents dropped per eval file summed."""
    merged = json.loads(json.dumps(manifests[0]["decontamination"]))
    for i, f in enumerate(merged["files"]):
        f["documents"] = sum(m["decontamination"]["files"][i]["documents"] for m in manifests)
    return merged


def _merge_source(work: Path, name: str, spec: str, ordered: list[Slice]) -> dict:
    """One source's shards from every slice, in slice order, and its counts summed."""
    entry = new_source_entry(spec)
    (work / name).mkdir(parents=True, exist_ok=True)
    for d, m in ordered:
        for split in SPLITS:
            for shard in m["sources"][name]["shards"][split]:
                link_or_copy(d / shard["file"], work / shard["file"])
                entry["shards"][split].append(shard)
        add_counts(entry, m["sources"][name])
    return entry
