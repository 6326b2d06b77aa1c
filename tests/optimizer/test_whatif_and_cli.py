import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from dragon.errors import DataError
from optimizer.whatif import what_if


@pytest.fixture(scope="module")
def bundle_dir(bundle, history, tmp_path_factory):
    """The fitted two-stage plant written as a real, verified bundle."""
    from dragon.bundle import write_bundle
    from dragon.drift import compute_baselines
    from dragon.provenance import Provenance

    target = tmp_path_factory.mktemp("written") / "bundle"
    frame = pd.DataFrame(history)
    write_bundle(
        target,
        spec=bundle.spec,
        gams=bundle.gams,
        detectors=bundle.detectors,
        baselines=compute_baselines(frame, list(frame.columns)),
        metrics={},
        calibration=bundle.calibration,
        provenance=Provenance("abc", False, "repo", "0" * 64, "0" * 64),
    )
    return target


def test_what_if_predicts_the_chain_at_hypothetical_setpoints(bundle, make_states):
    state = make_states(1)[0]
    result = what_if(bundle, state, {"t1": state["t1"] + 1.0})
    assert result.setpoints["t1"] == state["t1"] + 1.0
    m1 = result.predictions["stage_1"]
    assert m1.lower < m1.predicted < m1.upper
    assert m1.predicted > m1.current  # m1 rises with t1 (monotonic in the fitted model)
    same = what_if(bundle, state, {})
    assert same.predictions["stage_2"].predicted == pytest.approx(same.predictions["stage_2"].current)
    assert same.predictions["stage_2"].predicted == pytest.approx(state["m2"])  # bias-corrected
    assert set(result.anomaly) == {"oxidation", "product"}
    assert json.loads(result.model_dump_json())["predictions"]["stage_2"]


def test_what_if_refuses_unknown_and_predicted_tags(bundle, make_states):
    with pytest.raises(DataError, match="nope.*m1"):
        what_if(bundle, make_states(1)[0], {"nope": 1.0, "m1": 3.0})


def _run(args):
    from dragon.cli import build_app

    return CliRunner().invoke(build_app(), args)


def test_cli_recommend_json_and_table(bundle_dir, make_states):
    state = json.dumps(make_states(1)[0])
    result = _run(["recommend", "--bundle", str(bundle_dir), "--state", state, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["status"] in {"recommended", "hold"}
    assert payload["model_version"].startswith("bundle-")  # its manifest hash, as `serve --bundle` names it
    table = _run(["recommend", "--bundle", str(bundle_dir), "--state", state])
    assert table.exit_code == 0 and "contribution" in table.output and "anomaly gate" in table.output


def test_cli_whatif_table(bundle_dir, make_states, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"state": make_states(1)[0]}))
    result = _run(["whatif", "--bundle", str(bundle_dir), "--state", str(path), "--set", "t1=101", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["setpoints"]["t1"] == 101.0


def test_cli_bad_state_is_a_user_error(bundle_dir, capsys):
    from dragon.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["recommend", "--bundle", str(bundle_dir), "--state", '{"t1": "hot"}'])
    assert exit_info.value.code == 2
    assert "t1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["whatif", "--bundle", str(bundle_dir), "--state", "{", "--set", "t1=1"])


def test_cli_recommend_reads_a_state_csv_as_every_table_is_read(bundle_dir, make_states, tmp_path):
    """The console script: a column that is not a tag is ignored and named once on stderr, the --json
    answer alone on stdout."""
    from console import run_dragon

    path = tmp_path / "states.csv"
    pd.DataFrame(make_states(3)).assign(operator_note="ok").to_csv(path, index=False)
    result = run_dragon(
        "recommend", "--bundle", str(bundle_dir), "--state", str(path), "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] in {"recommended", "hold", "blocked"}
    assert "ignored columns" in result.stderr and "operator_note" in result.stderr


def test_recommend_and_whatif_tables_read_at_80_columns_with_units(
    trained_bundle, loaded_bundle, small_history, tmp_path
):
    """The console script on a narrow terminal: every figure whole (no ellipsis, no exponent), each
    model's unit beside its figures, the setpoint --set echoed with its unit, a legend under the tables."""
    from console import run_dragon

    spec = loaded_bundle.spec
    states = tmp_path / "window.csv"
    pd.read_parquet(small_history).dropna(subset=spec.required_state_tags).iloc[600:630].to_csv(
        states, index=False
    )
    setpoint = spec.setpoints[0]
    for args, legend_words in [
        (["recommend"], "bias offset = measured minus model at this state"),
        (
            ["whatif", "--set", f"{setpoint}={spec.tags[setpoint].bounds[0]}"],
            "each model fed the predictions",
        ),
    ]:
        result = run_dragon(
            *args, "--bundle", str(trained_bundle), "--state", str(states), cwd=tmp_path, COLUMNS="80"
        )
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "…" not in text and "e-0" not in text and "e+0" not in text
        assert max(len(line) for line in text.splitlines()) <= 80
        assert legend_words in " ".join(text.split())
        for name in spec.model_order:
            (line,) = [line for line in text.splitlines() if line.startswith(name + " ") and "[" in line]
            assert f" {spec.tags[spec.models[name].target].unit} " in line
    assert f"what if {setpoint} = {spec.tags[setpoint].bounds[0]:g} {spec.tags[setpoint].unit}" in text
