"""The benchmarks' pure parts: the throttle bound and the generated README table."""

from pathlib import Path

from bench.harness.figures import BEGIN, END, figure, update_readme
from bench.throttled_writes import Load, throttle_bound


def test_the_throttle_bound_is_the_latest_of_its_three_stages():
    # 60 deployments, burst 10, 2 writes/s: t(60) + 40 = 65, t(120) + 20 = 75, t(180) = 85.
    assert throttle_bound(Load(deployments=60, lro_seconds=20.0, write_burst=10, writes_per_second=2.0)) == 85.0
    # Long operations dominate: t(3) + 2 x 30 = 60 with the burst covering the first writes.
    assert throttle_bound(Load(deployments=3, lro_seconds=30.0, write_burst=10, writes_per_second=2.0)) == 60.0


def test_a_figure_divides_by_its_reference():
    row = figure("x", 1.0, unit="s", reference=4.0, reference_kind="baseline", goal="≤ 2 s", met=True)
    assert row["ratio"] == 0.25
    assert figure("y", 3.0, unit="", goal="≤ 1", met=False)["ratio"] is None


def test_the_readme_table_is_regenerated_between_its_markers(tmp_path: Path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.json").write_text(
        '{"benchmark": "a", "machine": {"commit": "abc1234", "cpus": 2}, "load": {"n": 1}, "wallSeconds": 3,'
        ' "figures": [{"figure": "billed", "broker": 1.5, "unit": "s", "reference": 100.0,'
        ' "referenceKind": "baseline", "ratio": 0.015, "goal": "≤ 2 s", "met": true}]}',
        encoding="utf-8",
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nstale\n{END}\nafter\n", encoding="utf-8")
    update_readme(readme, results)
    text = readme.read_text(encoding="utf-8")
    assert "stale" not in text
    assert text.startswith("intro\n")
    assert text.endswith("after\n")
    assert "| billed | 1.5 s | 100 s (baseline) | 0.015 | ≤ 2 s | yes |" in text
    assert "| a | abc1234 |" in text
