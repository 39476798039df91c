"""The checks before anything is written: a missing input or an unusable tokenizer exits 2."""

from __future__ import annotations

import pytest

from tests.data.prepare.runs import cli
from tests.data.prepare_corpus import write_jsonl


@pytest.mark.parametrize(
    "case", ["missing_input", "not_sentencepiece", "missing_tokenizer", "no_tokenizer"]
)
def test_missing_input_or_unusable_tokenizer_exits_2_before_writing(tmp_path, tok_path, case):
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": "fine text"}])
    args = [str(good), "--tokenizer", str(tok_path)]
    if case == "missing_input":
        args[0] = str(tmp_path / "missing.jsonl")
    elif case == "not_sentencepiece":
        (tmp_path / "fake.model").write_text("not a model")
        args[2] = str(tmp_path / "fake.model")
    elif case == "missing_tokenizer":
        args[2] = str(tmp_path / "none.model")
    else:
        args = args[:1]
    r = cli("prepare-data", *args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.jsonl"] + (["fake.model"] if case == "not_sentencepiece" else [])
    )


def test_exclude_meta_is_parsed_by_the_options(tmp_path):
    """`--exclude-meta KEY=VALUE` is checked where the options are built, so Python gets the
    CLI's check and message."""
    from tinyllama_cli.data.prepare import PrepareOptions
    from tinyllama_cli.errors import UserError

    options = PrepareOptions(out=tmp_path, exclude=["set=Github", ("lang", "go"), "note="])
    assert options.exclude == (("set", "Github"), ("lang", "go"), ("note", ""))
    for bad in ("novalue", "=x"):
        with pytest.raises(UserError, match=f"--exclude-meta takes KEY=VALUE, not '{bad}'"):
            PrepareOptions(out=tmp_path, exclude=[bad])
