"""The promotion gate through whole DAG runs: a model that fails it never reaches Production.

The runs succeed, because a rejected model is an outcome and not an error: the new version is
registered, stays out of Production, and carries the decision and its reason as tags. In
the last case the params try to let any model through, and the deployment's limits
(DP_PIPELINE_MIN_ACCURACY and DP_PIPELINE_MAX_EPSILON, 0.80 and 2.0 here) still apply.
"""

from __future__ import annotations

import re

import pytest
from faults_support import LIGHT_CONF, model_versions, production_versions, xcom_value

from dp_pipeline.registry import PROMOTION_REASON_TAG, PROMOTION_TAG

pytestmark = pytest.mark.e2e

# case: (params of the run, pattern of the reason tag, lines that the promote task logs)
CASES = {
    "accuracy": (
        {"accuracy_threshold": 0.99},
        r"test accuracy 0\.\d{4} is below the threshold 0\.9900",
        [],
    ),
    "epsilon": (
        {"epsilon_budget": 0.1},
        r"epsilon \d+\.\d{4} exceeds the budget 0\.1000",
        [],
    ),
    # Little noise gives an epsilon far above 2, which the params try to allow.
    "loosened": (
        {"noise_multiplier": 0.3, "epsilon_budget": 1000.0, "accuracy_threshold": 0.0},
        r"epsilon \d+\.\d{4} exceeds the budget 2\.0000",
        [
            "epsilon_budget 1000 is above the deployment's maximum; the gate uses 2",
            "accuracy_threshold 0 is below the deployment's minimum; the gate uses 0.8",
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gate_rejects_model(fault_stack, baseline_run, dag_test, case):
    params, reason, log_lines = CASES[case]
    production_before = production_versions(fault_stack)
    assert production_before, "no Production version to protect"
    run = dag_test(f"gate-{case}", {**LIGHT_CONF, **params})
    record = run.wait()

    assert record["state"] == "success", f"see {run.log_path}"
    versions = model_versions(fault_stack, run.run_id)
    assert len(versions) == 1, f"expected one new version, found {len(versions)}"
    rejected = versions[0]
    assert rejected.current_stage == "None", f"the rejected version is in {rejected.current_stage}"
    assert rejected.tags[PROMOTION_TAG] == "rejected"
    assert re.search(reason, rejected.tags[PROMOTION_REASON_TAG]), rejected.tags
    assert production_versions(fault_stack) == production_before
    decision = xcom_value(
        fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], run.run_id, "promote"
    )
    assert decision["promoted"] is False
    assert decision["reason"] == rejected.tags[PROMOTION_REASON_TAG]
    log = run.log_text()
    for line in log_lines:
        assert line in log, f"the promote task did not log {line!r}"
