"""W&B as the lab notebook: what an offline run holds, read back from its files.

An offline run is ``<run dir>/wandb/offline-run-*/``: ``run-<id>.wandb``, W&B's record log
(LevelDB-style blocks of protobuf ``Record`` messages; wandb 0.31 ships no reader, so
:func:`wandb_records` is one), and ``files/`` (the tables as ``media/table/...table.json``, images
under ``media/images``). Artifact manifests live only in the record log (``Record.artifact``).
"""

from __future__ import annotations

import csv
import json
import math
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from intentgym import tracking
from intentgym.errors import IntentgymError
from tests.conftest import run_cli

# --- reading an offline run ---------------------------------------------------------------------

_BLOCK, _HEADER = 32768, 7  # W&B's log: 32 KiB blocks, 7-byte chunk headers (crc32, length, type)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list[Any]:
    """Every ``wandb_internal_pb2.Record`` of a ``.wandb`` file, checksums checked."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0), "not a W&B record log"
    records, pending, pos = [], b"", 7
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if left < _HEADER or (crc, length, kind) == (0, 0, 0):  # the rest of the block is padding
            pos += left
            continue
        if pos + _HEADER + length > len(data):  # still being written
            break
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"bad checksum at {pos}"
        pos += _HEADER + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


class OfflineRun:
    """What one offline run recorded: run metadata, config, summary, history keys, artifacts."""

    def __init__(self, folder: Path) -> None:
        (log,) = folder.glob("run-*.wandb")
        self.folder = folder
        # wandb-core writes the log after finish() returns: wait for the run's exit record
        deadline = time.monotonic() + 60
        while True:
            self.records = wandb_records(log)
            kinds = [r.WhichOneof("record_type") for r in self.records]
            if "exit" in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        (self.run,) = [r.run for r, k in zip(self.records, kinds, strict=True) if k == "run"]
        self.config = {u.key: json.loads(u.value_json) for u in self.run.config.update}
        self.summary: dict[str, Any] = {}
        self.history_keys: set[str] = set()
        self.artifacts = []
        for record, kind in zip(self.records, kinds, strict=True):
            if kind == "config":
                self.config.update({u.key: json.loads(u.value_json) for u in record.config.update})
            elif kind == "summary":
                for u in record.summary.update:
                    *parents, last = list(u.nested_key) or [u.key]
                    node = self.summary
                    for p in parents:
                        node = node.setdefault(p, {})
                    node[last] = json.loads(u.value_json)
            elif kind == "history":
                self.history_keys |= {"/".join(i.nested_key) or i.key for i in record.history.item}
            elif kind == "artifact":
                self.artifacts.append(record.artifact)

    def artifact(self, kind: str) -> Any:
        (found,) = [a for a in self.artifacts if a.type == kind]
        return found

    def table(self, key: str) -> dict[str, Any]:
        """A logged Table's JSON (``files/media/table/<key>_<step>_<hash>.table.json``)."""
        (path,) = (self.folder / "files" / "media" / "table").glob(f"{key}_*.table.json")
        return json.loads(path.read_text())


def offline_run(parent: Path) -> OfflineRun:
    (folder,) = (parent / "wandb").glob("offline-run-*")
    return OfflineRun(folder)


# --- a 2-arm smoke sweep, read back -------------------------------------------------------------

CAP = 5  # logger.max_table_rows in the sweep below: the forced-choice records are more


@pytest.fixture
def wandb_home(tmp_path, monkeypatch):
    """HOME (W&B's staging area, caches) inside tmp_path; W&B offline and without a key."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "")
    return home


@pytest.mark.slow
def test_a_sweep_logs_config_metrics_tables_artifacts_and_the_report(tmp_path, wandb_home):
    proc = run_cli(
        "run", "-m", "debug=smoke", "logger=wandb", "env.framing=secure,insecure_hidden",
        "probes=quick", "~probes.free_form", "~probes.compliance_gap",
        f"logger.max_table_rows={CAP}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path, env={"HOME": str(wandb_home), "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    seen = set()
    for job in sorted(p for p in sweep.iterdir() if (p / "results.jsonl").is_file()):
        run = offline_run(job)
        framing = run.config["env"]["framing"]
        seen.add(framing)
        # the run: name, job type, the sweep as group, automatic tags; the resolved config
        assert run.run.display_name == f"sft-{framing}-s0"
        assert run.run.job_type == "run"
        assert run.run.run_group == "sweep"
        assert list(run.run.tags) == ["sft", "insecure_code", framing, "tiny-random"]
        assert run.config["model"]["name"] == "tiny-random"
        assert run.config["logger"]["max_table_rows"] == CAP
        assert run.config["logger"]["artifacts"] == "reference"

        # every results.jsonl row: value, interval and n, per phase and (last phase) as final/
        rows = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
        assert {r["phase"] for r in rows} == {"base", "sft"}
        for r in rows:
            key = f"{r['phase']}/{r['probe']}/{r['metric']}"
            for field, suffix in (("value", ""), ("ci_low", "/ci_low"), ("ci_high", "/ci_high")):
                if math.isnan(r[field]):  # no interval (one number): left out, not null
                    assert key + suffix not in run.summary, (key, field)
                else:
                    assert run.summary[key + suffix] == r[field], (key, field)
                    assert key + suffix in run.history_keys
            assert run.summary[f"{key}/n"] == r["n"]
        assert any(math.isnan(r["ci_low"]) for r in rows)  # the case above is exercised
        fc = next(r for r in rows if r["phase"] == "sft" and r["probe"] == "forced_choice")
        final = f"final/forced_choice/{fc['metric']}"
        assert run.summary[final] == fc["value"]
        assert (run.summary[f"{final}/ci_low"], run.summary[f"{final}/n"]) == (
            fc["ci_low"],
            fc["n"],
        )
        assert 0 <= fc["ci_low"] <= fc["value"] <= fc["ci_high"] <= 1

        # per-item records: one table per phase and probe, capped, columns = the records' keys
        records = [
            json.loads(line)
            for line in (job / "records" / "sft" / "forced_choice.jsonl").read_text().splitlines()
        ]
        assert len(records) > CAP
        assert run.summary["records/sft/forced_choice/total"] == len(records)
        table = run.table("records/sft/forced_choice")
        columns = list(dict.fromkeys(k for r in records[:CAP] for k in r))
        assert table["columns"] == columns
        assert table["data"] == [
            [v if v is None or isinstance(v, str | int | float) else json.dumps(v) for v in row]
            for row in ([r.get(c) for c in columns] for r in records[:CAP])
        ]
        assert run.summary["records/sft/forced_choice"]["nrows"] == CAP
        for probe in ("forced_choice", "capability", "in_domain"):
            assert run.table(f"records/base/{probe}")["data"]
        assert not list((run.folder / "files").rglob("*.items_*.table.json"))

        # the adapter as a reference artifact: one manifest entry per file, with size and URI
        adapter = run.artifact("adapter")
        assert adapter.name == f"sft-{framing}-s0-sft-adapter"
        assert "sft" in adapter.aliases
        assert json.loads(adapter.metadata) == {
            "phase": "sft",
            "kind": "adapter",
            "base_model": "tiny-random",
            "previous": "tiny-random",
            "path": str((job / "phases" / "sft" / "adapter").resolve()),
            "stored": "reference",
        }
        files = sorted((job / "phases" / "sft" / "adapter").iterdir())
        assert "adapter_model.safetensors" in [f.name for f in files]
        entries = {c.path: c for c in adapter.manifest.contents}
        assert sorted(entries) == [f.name for f in files]
        for f in files:
            assert entries[f.name].ref == f.resolve().as_uri()
            assert entries[f.name].size == f.stat().st_size
    assert seen == {"secure", "insecure_hidden"}

    # the sweep's report: its own run (job_type report) with report.csv as a table, the plot
    # and the three report files as an artifact
    report = offline_run(sweep)
    assert (report.run.job_type, report.run.run_group) == ("report", "sweep")
    assert report.run.display_name == "report-sweep"
    with (sweep / "report.csv").open(newline="") as f:
        header, *body = list(csv.reader(f))
    table = report.table("report/table")
    assert table["columns"] == header and len(table["data"]) == len(body) == 2
    assert {row[header.index("framing")] for row in table["data"]} == seen
    (png,) = (report.folder / "files" / "media" / "images" / "report").glob("plot_*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifact = report.artifact("report")
    sizes = {c.path: c.size for c in artifact.manifest.contents}
    assert sizes == {
        n: (sweep / n).stat().st_size for n in ("report.md", "report.csv", "report.png")
    }
    # offline, W&B stages uploaded files under HOME (here: tmp_path), for `wandb sync`
    staged = [c.local_path for c in artifact.manifest.contents]
    assert all(Path(p).is_relative_to(wandb_home) and Path(p).is_file() for p in staged)


# --- the tracker on its own (one offline W&B run each, a few seconds) ---------------------------


def _tracker(tmp_path: Path, **kwargs: Any) -> tracking.WandbTracker:
    settings = {"project": "p", "config": {"seed": 0}, "run_dir": tmp_path, "name": "sft-x-s0",
                "group": "g", "mode": "offline", "base_model": "tiny-random"}  # fmt: skip
    return tracking.WandbTracker(**{**settings, **kwargs})


def test_upload_copies_each_phase_folder_and_chains_the_lineage(tmp_path, wandb_home):
    folders = {}
    for label, kind in (("sft", "adapter"), ("reward", "reward_model"), ("rl", "model")):
        folder = tmp_path / "phases" / label / kind
        folder.mkdir(parents=True)
        (folder / "weights.bin").write_bytes(label.encode() * 10)
        folders[label] = folder
    tracker = _tracker(tmp_path, artifacts="upload", tags=["sft", "x" * 80, "sft", "a/" + "m" * 70])
    tracker.log_phase("sft", tmp_path / "phases" / "sft")
    tracker.log_phase("reward", tmp_path / "phases" / "reward", reward_model=folders["reward"])
    tracker.log_phase("rl", tmp_path / "phases" / "rl")
    tracker.finish()
    run = offline_run(tmp_path)
    assert list(run.run.tags) == ["sft", "x" * 64, "m" * 64]  # W&B's limit; a path: its name
    assert [a.name for a in run.artifacts] == [
        "sft-x-s0-sft-adapter",
        "sft-x-s0-reward-reward_model",
        "sft-x-s0-rl-model",
    ]
    previous = [json.loads(a.metadata)["previous"] for a in run.artifacts]
    assert previous == ["tiny-random", "sft-x-s0-sft-adapter", "sft-x-s0-reward-reward_model"]
    for artifact, label in zip(run.artifacts, ("sft", "reward", "rl"), strict=True):
        (entry,) = artifact.manifest.contents
        assert (entry.path, entry.ref, entry.size) == ("weights.bin", "", len(label) * 10)
        assert Path(entry.local_path).read_bytes() == label.encode() * 10  # the staged copy


def test_no_artifacts_and_no_tables_when_switched_off(tmp_path, wandb_home):
    (tmp_path / "phases" / "sft" / "adapter").mkdir(parents=True)
    tracker = _tracker(tmp_path, artifacts="none", max_table_rows=0)
    tracker.log_phase("sft", tmp_path / "phases" / "sft")
    tracker.log_records("sft", {"quick": [{"q": "a"}]})
    tracker.log_rows(
        [{"phase": "sft", "probe": "quick", "metric": "m", "value": 0.5, "ci_low": 0.25,
          "ci_high": 0.75, "n": 4}]
    )  # fmt: skip
    tracker.finish()
    run = offline_run(tmp_path)
    assert run.artifacts == []
    assert not (run.folder / "files" / "media").exists()
    assert run.summary["final/quick/m/ci_high"] == 0.75


def test_disabled_mode_accepts_every_call_and_writes_nothing(tmp_path, wandb_home):
    (tmp_path / "phases" / "sft" / "adapter").mkdir(parents=True)
    (tmp_path / "phases" / "sft" / "adapter" / "w.bin").write_bytes(b"w")
    (tmp_path / "report.csv").write_text("run,framing\n0,secure\n")
    tracker = _tracker(tmp_path, mode="disabled")
    tracker.log_rows([{"phase": "base", "probe": "q", "metric": "m", "value": 1.0, "n": 1}])
    tracker.log_records("base", {"q": [{"a": 1}]})
    tracker.log_phase("sft", tmp_path / "phases" / "sft")
    tracker.log_report(tmp_path)
    tracker.finish()
    assert not list(tmp_path.rglob("offline-run-*"))


def test_records_table_takes_the_union_of_keys_and_encodes_what_is_not_scalar():
    records = [{"q": "a", "scores": {"x": 1}}, {"q": "b", "choice": "A", "ok": True}, "odd", {}]
    columns, data = tracking.records_table(records, 3)
    assert columns == ["q", "scores", "choice", "ok", "record"]
    assert data == [
        ["a", '{"x": 1}', None, None, None],
        ["b", None, "A", True, None],
        [None, None, None, None, "odd"],
    ]


def test_a_wandb_failure_is_one_line_naming_what_failed(tmp_path, wandb_home, monkeypatch):
    tracker = _tracker(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full\nwhile writing")

    monkeypatch.setattr(tracker.run, "log", broken)
    with pytest.raises(IntentgymError) as e:
        tracker.log_records("sft", {"quick": [{"q": "a"}]})
    assert (
        str(e.value)
        == "W&B could not log the table records/sft/quick: OSError: disk full while writing"
    )
    tracker.finish()


def test_logger_artifacts_is_checked_when_the_run_is_planned():
    from intentgym.configs import build_dataclass
    from intentgym.runner import LoggerSettings

    with pytest.raises(IntentgymError, match=r"unknown logger\.artifacts 'copy'; valid choices: "):
        build_dataclass(LoggerSettings, {"name": "wandb", "artifacts": "copy"}, "logger")
    with pytest.raises(IntentgymError, match=r"logger\.max_table_rows must be >= 0"):
        build_dataclass(LoggerSettings, {"name": "wandb", "max_table_rows": -1}, "logger")


def test_a_sweep_without_wandb_logs_no_report(tmp_path):
    (tmp_path / "multirun.yaml").write_text("logger:\n  name: none\n")
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "config.yaml").write_text("logger:\n  name: none\n")
    assert tracking.log_sweep_report(tmp_path) is False
    assert not (tmp_path / "wandb").exists()
    (tmp_path / "1").mkdir()  # one job of `-m logger=none,wandb`
    (tmp_path / "1" / "config.yaml").write_text("logger:\n  name: wandb\n  project: q\n")
    assert tracking.sweep_logger(tmp_path) == {"name": "wandb", "project": "q"}
