"""The summary `make train` prints (`facegen outcome`): FID at N says its N, next to the figures that do not depend on
N (FID∞, KID) that the gate reads; gate reasons and the next command follow. (Read back from a real MLflow run by
tests/test_training_pipeline_e2e.py; here from a run record built in memory.)"""

from __future__ import annotations

from mlflow.entities import Metric, Param, Run, RunData, RunInfo

from facegen.registry.run_outcome import RunOutcome, format_outcome, record_cached_figures


def outcome(metrics: dict[str, float], params: dict[str, str]) -> RunOutcome:
    info = RunInfo("r" * 32, "1", "tester", "FINISHED", 0, 1, "active", artifact_uri="file:///runs/r", run_name="run-1")
    data = RunData(
        metrics=[Metric(key, value, 0, 0) for key, value in metrics.items()],
        params=[Param(key, value) for key, value in params.items()],
    )
    gate = {
        "model_name": "facegen-generator",
        "version": "4",
        "passed": False,
        "gate_status": "failed",
        "reasons": ["FID∞ (fid_inf) 212 is above the limit 200"],
        "champion_version": "none",
    }
    return RunOutcome(Run(info, data), gate, [], [])


def test_fid_at_n_is_printed_with_its_n_next_to_fid_inf_and_kid() -> None:
    text = format_outcome(
        outcome({"fid": 236.7, "fid_inf": 212.3, "kid_mean": 0.1834, "recall": 0.02}, {"eval_num_generated": "500"})
    )
    assert "  quality: FID 236.7 (N=500), FID∞ 212.3, KID 0.1834, recall 0.02\n" in text
    assert "  gate: FAILED\n    - FID∞ (fid_inf) 212 is above the limit 200\n" in text
    assert "facegen approve 4" in text and "--force" in text


def test_a_run_from_before_fid_inf_prints_what_it_has() -> None:
    text = format_outcome(outcome({"fid": 236.7, "kid_mean": 0.18}, {}))
    assert "  quality: FID 236.7 (N=?), KID 0.18\n" in text


def test_figures_a_cached_step_logged_elsewhere_are_copied_onto_the_registering_run(mlflow_tracking) -> None:
    """ZenML serves unchanged steps from its cache without running them, so their MLflow metrics stay on an earlier
    run: the deploy gate copies what is missing (numbers only) and leaves what the run already has."""
    experiment = mlflow_tracking.create_experiment("cached-figures")
    run_id = mlflow_tracking.create_run(experiment).info.run_id
    mlflow_tracking.log_metric(run_id, "fid", 210.0)

    figures = {"fid": 999.0, "kid_mean": 0.25, "fairness_gender_tv": 0.04, "is_network": "inception", "flag": True}
    logged = record_cached_figures(mlflow_tracking, run_id, figures)

    assert logged == {"kid_mean": 0.25, "fairness_gender_tv": 0.04}
    assert mlflow_tracking.get_run(run_id).data.metrics == {"fid": 210.0, "kid_mean": 0.25, "fairness_gender_tv": 0.04}
