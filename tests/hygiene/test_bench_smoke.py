"""The hygiene benchmark at a tiny load: both scans run and agree, and the call pattern is the one the figures claim.

Call counts come from the emulator's request log and do not depend on timing; wall times are not checked here.
"""

from __future__ import annotations

import pytest

from bench.hygiene_scan import Load, run

pytestmark = pytest.mark.integration


def test_the_naive_and_the_broker_scans_agree_and_ordinary_scans_list_no_keys_and_read_no_values():
    result = run(Load(workspaces=3, endpoints=3, broken=1, workers=2))

    naive, (first, ordinary, restored) = result["naive"], result["scans"]
    assert naive["endpoints"] == first["endpoints"] == 9
    assert naive["unhealthy"] == first["unhealthy"] == ordinary["unhealthy"] == 1
    assert naive["driftedSecrets"] == 0
    assert (naive["calls"]["list_keys"], naive["calls"]["secret_reads"]) == (9, 18)
    # The first scan has no earlier report: every endpoint's keys are compared, by fingerprint only.
    assert first["keyDrift"]["checked"] == 9
    assert first["keyDrift"]["comparedBy"] == {"fingerprint": 18, "value": 0, "tagged": 0}
    assert (first["calls"]["list_keys"], first["calls"]["secret_reads"]) == (9, 0)
    # 15 minutes later, a 24-hour cadence leaves (almost) every endpoint alone; two list calls per workspace remain.
    assert ordinary["calls"]["list_keys"] < 9
    assert ordinary["calls"]["arm"] == 2 * 3 + ordinary["calls"]["list_keys"]
    assert ordinary["calls"]["secret_reads"] == 0
    assert (restored["unhealthy"], restored["findings"]["resolved"]) == (0, 1)
    assert all(scan["errorCount"] == 0 for scan in result["scans"])
    assert {row["figure"].rsplit(": ", 1)[1] for row in result["figures"]} >= {
        "ARM calls per endpoint, ordinary scan",
        "Key Vault calls per endpoint, ordinary scan",
        "wall, ordinary scan",
    }
