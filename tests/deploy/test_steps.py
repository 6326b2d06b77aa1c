"""Workflow steps: champion/challenger, approval and the deployed.<env> tag's consistency."""

from __future__ import annotations

import pytest

from deploy import steps
from dragon.errors import RegistryError
from dragon.registry import deployed_version, get_version
from dragon.settings import load_settings

PLANT = "yet-dragon"


@pytest.fixture()
def two_versions(registry_home, trained_bundle):
    settings = load_settings()
    first = steps.register(steps.RegisterInput(str(trained_bundle), PLANT), settings)
    second = steps.register(steps.RegisterInput(str(trained_bundle), PLANT, approval_required=True), settings)
    return settings, first, second


def test_register_sets_approval_tags(two_versions):
    settings, first, second = two_versions
    assert (first.approval, second.approval) == ("approved", "pending")
    assert get_version(settings, PLANT, second.version).tags["approval"] == "pending"


def test_pending_version_cannot_be_resolved_for_deployment_until_approved(two_versions):
    settings, _, second = two_versions
    with pytest.raises(RegistryError, match="pending"):
        steps.resolve_version(steps.ResolveInput(PLANT, "local", second.version), settings)
    steps.set_approval(steps.ApprovalInput(PLANT, second.version, "approved"), settings)
    assert steps.resolve_version(steps.ResolveInput(PLANT, "local", second.version), settings).version == "2"


def test_deployed_tag_moves_and_is_removed_on_undeploy(two_versions):
    settings, first, second = two_versions
    steps.tag_deployment(steps.TagInput(PLANT, first.version, "dev", "endpoint-a"), settings)
    steps.tag_deployment(steps.TagInput(PLANT, second.version, "dev", "endpoint-b"), settings)
    assert "deployed.dev" not in get_version(settings, PLANT, first.version).tags
    assert deployed_version(settings, PLANT, "dev").version == second.version
    assert "champion" in get_version(settings, PLANT, second.version).aliases
    steps.untag_deployment(steps.UntagInput(PLANT, "dev"), settings)
    assert deployed_version(settings, PLANT, "dev") is None


def test_failed_deployment_keeps_the_serving_version_tagged(two_versions):
    settings, first, second = two_versions
    steps.tag_deployment(steps.TagInput(PLANT, first.version, "prod"), settings)
    failure = steps.FailureInput(PLANT, "prod", "EndpointFailed", "capacity", second.version)
    result = steps.record_failure(failure, settings)
    assert result.deployed_version == first.version
    tags = get_version(settings, PLANT, second.version).tags
    assert "deployed.prod" not in tags and "EndpointFailed" in tags["last_failure.prod"]


def test_challenger_that_is_worse_is_not_promoted(loaded_bundle, small_history):
    import copy
    import dataclasses

    from dragon.data import read_history
    from training.transforms import prepare_training_data

    spec = loaded_bundle.spec
    holdout = prepare_training_data(read_history(small_history, spec), spec, source="test").holdout
    assert steps.compare_bundles(loaded_bundle, loaded_bundle, holdout).promote  # a tie is within tolerance

    # A challenger whose concentration model is off by 10 wt % everywhere loses on the constrained model.
    biased = copy.deepcopy(loaded_bundle.gams["concentration"])
    biased.coef_ = biased.coef_.copy()
    biased.coef_[-1] += 10.0  # pygam puts the intercept last
    challenger = dataclasses.replace(loaded_bundle, gams={**loaded_bundle.gams, "concentration": biased})
    verdict = steps.compare_bundles(challenger, loaded_bundle, holdout)
    assert not verdict.promote
    assert "concentration RMSE" in verdict.reason
    assert verdict.candidate["concentration"] > verdict.champion["concentration"]


def _register_from_job(settings, tmp_path, model_tar: bytes, job: str, promote: bool = True):
    """A version registered the way the training workflow registers a SageMaker job's model.tar.gz."""
    archive = tmp_path / "training" / job / "output" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(model_tar)
    verdict = {"promote": promote, "reason": "won" if promote else "challenger loses: yield RMSE"}
    return steps.register(steps.RegisterInput(str(archive), PLANT, promotion=verdict), settings)


def test_resolve_refuses_a_pending_version_and_points_at_the_jobs_tar(registry_home, tmp_path, model_tar):
    settings = load_settings()
    archive = tmp_path / "training" / "dragon-train-gate" / "output" / "model.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(model_tar)
    registered = steps.register(steps.RegisterInput(str(archive), PLANT, approval_required=True), settings)
    with pytest.raises(RegistryError, match="pending"):
        steps.resolve_version(steps.ResolveInput(PLANT, "dev", registered.version), settings)
    steps.set_approval(steps.ApprovalInput(PLANT, registered.version, "approved"), settings)
    resolved = steps.resolve_version(steps.ResolveInput(PLANT, "dev", registered.version), settings)
    assert resolved.model_data_url == str(archive), "deployments read the job's model.tar.gz"
    assert resolved.bundle_uri != resolved.model_data_url


def test_evaluation_without_a_holdout_compares_on_the_newest_period_of_the_data(
    registry_home, small_history, trained_bundle
):
    evaluation = steps.evaluate_challenger(
        steps.EvaluateInput(PLANT, str(trained_bundle), "dev", data_uri=str(small_history)), load_settings()
    )
    assert evaluation.promote and evaluation.champion is None and set(evaluation.candidate)
    with pytest.raises(RegistryError, match="data_uri"):
        steps.evaluate_challenger(steps.EvaluateInput(PLANT, str(trained_bundle), "dev"), load_settings())
