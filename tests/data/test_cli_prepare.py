"""``semflow prepare``: argument parsing and the summary, on generated miniatures."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from semflow.cli import prepare
from semflow.errors import SemflowInputError


def run_prepare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="semflow")
    prepare.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare", *argv])
    return args.func(args)


def test_cocostuff_metas_and_bad_file_listing(tmp_path, save, random_image, capsys):
    for key in ("1", "2"):
        save(tmp_path / "val2017" / f"{key}.jpg", random_image(4, 4), quality=95)
        save(tmp_path / "annotations" / "val2017" / f"{key}.png", np.zeros((4, 4), np.uint8))
    save(tmp_path / "annotations" / "val2017" / "2.png", np.full((4, 4), 11, np.uint8))  # unused COCO id
    with pytest.raises(SemflowInputError, match=r"2\.png holds label value\(s\) 11"):
        run_prepare(["cocostuff", str(tmp_path), "--check"])
    assert run_prepare(["cocostuff", str(tmp_path), "--check", "--skip-bad"]) == 0
    assert (tmp_path / "metas" / "val.txt").read_text() == "1\n"
    out = capsys.readouterr()
    assert "val 1" in out.out and "left out 1 bad file(s)" in out.err
    assert "label value(s) 11" in (tmp_path / "metas" / "bad_files.tsv").read_text()


def test_celebamask_hq_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        run_prepare(["celebamask-hq", "--help"])
    text = capsys.readouterr().out
    assert "RAW" in text and "OUT" in text and "--skip-bad" in text and "--size" in text
