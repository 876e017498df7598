"""Regenerate docs/faults.md from tests/test_faults.py: run every fault case and write its
observed one-line message into the table (the test module checks the table against the real
messages). No model is loaded; a few seconds.

    .venv/bin/python scripts/faults_table.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_faults import DOC, FAULTS, observed, table_cell, trigger  # noqa: E402

HEADER = """# Faults tried: bad input and failed writes

Every loader of user-supplied or packaged files turns undecodable, truncated, wrongly shaped or
wrongly typed input into ONE line (an `IntentgymError`: the CLI prints it and exits with status 2)
naming the file, and the line and field where there is one; report files are written atomically
(a temporary file in the same folder, renamed when complete), so a full disk is one line and the
previous file survives. **`tests/test_faults.py` checks this table**: each row is one of its
cases, and the test fails when a loader's message no longer matches the "observed" column.
Regenerate the table with `.venv/bin/python scripts/faults_table.py` (this file is its output).

Conventions: JSONL errors say `<what> '<file>' line N: ...`; YAML syntax errors give the line and
column; text items (questions, requests, answers, pair texts, demonstrations, principles, rules)
longer than `intentgym.files.MAX_ITEM_CHARS` (20,000) characters are refused. A malformed run in a
sweep is skipped by `intentgym report` with a one-line warning and listed as unreadable in
report.md (the rest of the sweep is still reported); the cases below have no readable run, so the
report fails with the first reason. A leading UTF-8 byte-order mark is accepted. The test folder
is left out of the paths below.

| case | loader | input | expected (one line naming the file, and) | observed |
|---|---|---|---|---|
"""


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, fault in enumerate(FAULTS):
            root = Path(tmp) / str(k)
            root.mkdir()
            mp = pytest.MonkeyPatch()
            try:
                error = trigger(fault, root, mp)
            finally:
                mp.undo()
            expected = ", ".join(f"`{e}`" for e in fault.expect)
            rows.append(
                f"| {fault.id} | {fault.loader} | {table_cell(fault.input)} | "
                f"{table_cell(expected)} | {table_cell(observed(error, root))} |"
            )
    DOC.write_text(HEADER + "\n".join(rows) + f"\n\n{len(rows)} cases.\n", encoding="utf-8")
    print(f"wrote {DOC} ({len(rows)} cases)")


if __name__ == "__main__":
    main()
