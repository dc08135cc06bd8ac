"""With several workers, /metrics adds up the workers' sample files, including while a worker is
creating one (the file is empty for an instant: a scrape then must not fail)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from controller import metrics

COUNTER = "gitjob_webhook_missed_pushes"


def _write_counter(path: Path, value: float) -> None:
    samples = MmapedDict(str(path))  # type: ignore[no-untyped-call]
    key = mmap_key(COUNTER, COUNTER + "_total", [], [], "help")
    samples.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    samples.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("being_created", [
    [],
    ["counter_3.db"],
    ["counter_3.db", "histogram_3.db", "gauge_livemax_3.db", "gauge_liveall_3.db"],
])
def test_workers_samples_add_up_while_a_worker_creates_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, being_created: list[str]
) -> None:
    _write_counter(tmp_path / "counter_1.db", 2)
    _write_counter(tmp_path / "counter_2.db", 3)
    for name in being_created:
        (tmp_path / name).touch()
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    text, _ = metrics.exposition()
    assert f"{COUNTER}_total 5.0" in text.decode()
