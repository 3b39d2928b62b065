"""params.yaml validation: every bad key or value is named with what is allowed."""

from pathlib import Path

import pytest
import yaml

from mtlbench.config import ParamsError, defaults, load_params, parse_params, project_root

ROOT = Path("/repo")


def parse(raw, env=None):
    return parse_params(raw, env or {}, ROOT)


def test_repository_params_yaml_is_valid_and_documented():
    repo = Path(__file__).resolve().parents[1]
    params = load_params(repo / "params.yaml", env={})
    page = (repo / "docs" / "parameters.md").read_text()
    for section, fields in defaults().items():
        for key in fields:
            assert f"`{section}.{key}`" in page, f"{section}.{key} is not documented in docs/parameters.md"
    assert params.run.seeds == (0, 1, 2)


def test_defaults_fill_missing_keys_and_tracking_uri_is_absolute():
    params = parse({})
    assert params.run.studies == ("mnist_fashion_mlp", "mnist_fashion_cnn")
    assert params.run.device == "auto" and params.data.verify is True
    assert params.mlflow.tracking_uri == "sqlite:////repo/mlflow.db"


@pytest.mark.parametrize(
    "raw, pattern",
    [
        ({"run": {"seed": [0]}}, r"run\.seed: unknown key; allowed keys: studies, seeds, device"),
        ({"trian": {}}, r"trian: unknown section; allowed sections: run, data, mlflow"),
        ({"run": {"device": "tpu"}}, r"run\.device: 'tpu' is not allowed; allowed values: auto, cpu, cuda"),
        ({"run": {"studies": ["mnist"]}}, r"run\.studies: 'mnist' is neither a catalogue study \(mnist_fashion_mlp, .*"
                                          r"nor a run declared under runs:; declare it .*-S '\+runs\.mnist=\{study: \.\.\.\}'"),
        ({"run": {"seeds": [0, 0]}}, r"run\.seeds: expected a non-empty list of distinct integers from 0 to 9223372036854775807"),
        ({"run": {"seeds": [1180591620717411303424]}}, r"run\.seeds: expected .* \(torch.manual_seed's range\), got \[1180591620717411303424\]"),
        ({"run": {"seeds": "0"}}, r"run\.seeds: expected"),
        ({"run": {"train_limit": 0}}, r"run\.train_limit: expected null or a positive integer, got 0"),
        ({"run": {"max_epochs": True}}, r"run\.max_epochs: expected null or a positive integer"),
        ({"data": {"verify": "yes"}}, r"data\.verify: expected true or false, got 'yes'"),
        ({"mlflow": {"tracking_uri": ""}}, r"mlflow\.tracking_uri: expected null or a non-empty string"),
        ({"run": ["studies"]}, r"run: expected a mapping with keys studies, seeds"),
        ({"rsn2": {"init": "random"}}, r"rsn2\.init: 'random' is not allowed; allowed values: matched, original"),
        ({"rsn2": {"prune_percent": 100}}, r"rsn2\.prune_percent: expected null or an integer from 1 to 99"),
        ({"cuda": {"bf16": "yes"}}, r"cuda\.bf16: 'yes' is not allowed; allowed values: auto, true, false"),
        ({"cuda": {"fp8": True}}, r"cuda\.fp8: unknown key; allowed keys: graphs, tf32, bf16, channels_last, compile"),
        ({"run": {"tasks": [["T1"]]}}, r"run\.tasks: expected a list of names \(strings\), got the entry \['T1'\]"),
        ({"run": {"studies": [["mnist_fashion_mlp"]]}}, r"run\.studies: expected a list of names"),
        ({"run": {"variants": [{"rsn2": 1}]}}, r"run\.variants: expected a list of names"),
        ({"run": None}, r"run: the section is empty \(null\); give its keys"),
        ({"run": {"executor": "dask"}}, r"run\.executor: 'dask' is not allowed; allowed values: local, ray"),
        ({"run": {"ray_gpus_per_unit": 0}}, r"run\.ray_gpus_per_unit: expected a number in \(0, 1\]"),
    ],
)
def test_bad_params_name_the_key_and_what_is_allowed(raw, pattern):
    with pytest.raises(ParamsError, match=pattern):
        parse(raw)


def test_environment_overrides_mirror_and_tracking_uri():
    raw = {"data": {"mirror": "/from/params"}, "mlflow": {"tracking_uri": "sqlite:////from/params.db"}}
    assert parse(raw).data.mirror == "/from/params"
    env = {"MTLBENCH_DATA_MIRROR": "/from/env", "MLFLOW_TRACKING_URI": "http://localhost:5000"}
    params = parse(raw, env)
    assert params.data.mirror == "/from/env" and params.mlflow.tracking_uri == "http://localhost:5000"


def test_load_params_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml", env={})
    (tmp_path / "params.yaml").write_text("run: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml", env={})


def test_an_empty_params_file_is_an_error(tmp_path):
    (tmp_path / "params.yaml").write_text("# nothing\n")
    with pytest.raises(ParamsError, match="params.yaml: the file is empty; expected the sections run, data"):
        load_params(tmp_path / "params.yaml", env={})


@pytest.mark.parametrize("run, pattern", [
    ({"variants": ["hps_pcgrad"]}, r"run\.variants: 'hps_pcgrad' is in none of the studies it applies to; "
                                   r"they have mnist_fashion_mlp: dedicated, rsn2"),
    ({"tasks": ["T1"]}, r"run\.tasks: 'T1' is in none of the studies it applies to; they have mnist_fashion_mlp: digits, fashion"),
])
def test_values_the_enabled_studies_lack_are_caught_before_any_download(run, pattern):
    from mtlbench.config import check_against_studies

    with pytest.raises(ParamsError, match=pattern):
        check_against_studies(parse({"run": {"studies": ["mnist_fashion_mlp"], **run}}))
    check_against_studies(parse({"run": {"studies": ["mnist_fashion_mlp", "mnist_fashion_hps"], "variants": ["hps_pcgrad"]}}))


def test_project_root_of_a_dvc_temp_experiment_is_the_original_repo(tmp_path):
    repo = tmp_path / "repo"
    exp = repo / ".dvc" / "tmp" / "exps" / "tmpabc123"
    exp.mkdir(parents=True)
    (exp / "dvc.yaml").write_text("stages: {}\n")
    (exp / "params.yaml").write_text(yaml.safe_dump(defaults()))
    assert project_root(exp) == repo
    assert load_params(exp / "params.yaml", env={}).mlflow.tracking_uri == f"sqlite:///{repo}/mlflow.db"


# ---------------------------------------------------------------- runs: a study at a size, protocol and seeds

HPS_RUN = {"study": "mnist_fashion_hps", "protocol": "modern", "train_limit": 3000, "seeds": [0, 1, 2, 3]}


def test_a_declared_run_trains_its_study_under_its_own_values_and_the_run_section_for_the_rest():
    params = parse({"run": {"studies": ["hps_modern", "mnist_fashion_mlp"], "seeds": [7], "device": "cpu"},
                    "runs": {"hps_modern": HPS_RUN}})
    hps = params.for_run("hps_modern")
    assert params.study_of("hps_modern") == "mnist_fashion_hps"
    assert (hps.run.protocol, hps.run.train_limit, hps.run.seeds, hps.run.device) == ("modern", 3000, (0, 1, 2, 3), "cpu")
    assert hps.run.studies == ("hps_modern",)
    plain = params.for_run("mnist_fashion_mlp")  # a catalogue study: the run section as it is
    assert params.study_of("mnist_fashion_mlp") == "mnist_fashion_mlp"
    assert (plain.run.protocol, plain.run.train_limit, plain.run.seeds) == ("faithful", None, (7,))


def test_a_run_declares_its_own_recipe_over_the_modern_section():
    params = parse({"run": {"studies": ["short", "long"]}, "modern": {"lr": 0.003},
                    "runs": {"short": HPS_RUN, "long": {**HPS_RUN, "modern": {"epochs": 200, "weight_decay": None}}}})
    long, short = params.for_run("long").modern, params.for_run("short").modern
    assert (long.epochs, long.lr, long.weight_decay) == (200, 0.003, None)  # its own epochs, the section's lr
    assert (short.epochs, short.lr) == (None, 0.003)


@pytest.mark.parametrize("runs, pattern", [
    ({"r": {"seeds": [1]}}, r"runs\.r\.study: missing; expected one of mnist_fashion_mlp"),
    ({"r": {"study": "mnist"}}, r"runs\.r\.study: 'mnist' is not a catalogue study; expected one of"),
    ({"r": {**HPS_RUN, "device": "cuda"}}, r"runs\.r\.device: unknown key; a run declares study, seeds, train_limit"),
    ({"r": {**HPS_RUN, "seeds": [1, 1]}}, r"runs\.r\.seeds: expected a non-empty list of distinct integers"),
    ({"r": ["mnist_fashion_hps"]}, r"runs\.r: expected a mapping with keys from study, seeds"),
    ({"a b": HPS_RUN}, r"runs\.a b: a run name is a folder and stage name: letters, digits, _ and -"),
    ({"mnist_fashion_mlp": {"study": "mnist_fashion_hps"}}, r"runs\.mnist_fashion_mlp\.study: a run named after the "
                                                             r"catalogue study mnist_fashion_mlp trains that study"),
    (["r"], r"runs: expected a mapping of run name -> its declaration"),
    ({"r": {**HPS_RUN, "modern": {"epoch": 3}}}, r"runs\.r\.modern\.epoch: unknown key; allowed keys: epochs, lr"),
    ({"r": {**HPS_RUN, "modern": {"epochs": 0}}}, r"runs\.r\.modern\.epochs: expected null or a positive integer"),
    ({"r": {**HPS_RUN, "modern": 200}}, r"runs\.r\.modern: expected a mapping with some of the keys epochs"),
    ({"r": {"study": "mnist_fashion_hps", "modern": {"lr": 0.01}}},
     r"runs\.r\.modern: is set, but the run trains under the 'faithful' protocol, which does not read it"),
])
def test_bad_run_declarations_name_the_run_and_key(runs, pattern):
    with pytest.raises(ParamsError, match=pattern):
        parse({"runs": runs})


def test_a_runs_variants_must_be_its_own_studys_and_the_modern_section_needs_a_modern_run():
    from mtlbench.config import check_against_studies

    params = parse({"run": {"studies": ["r"]}, "runs": {"r": {**HPS_RUN, "variants": ["hps3"]}}})
    with pytest.raises(ParamsError, match=r"runs\.r\.variants: 'hps3' is in none of the studies it applies to; "
                                          r"they have mnist_fashion_hps: dedicated"):
        check_against_studies(params)
    parse({"run": {"studies": ["r"]}, "runs": {"r": HPS_RUN}, "modern": {"lr": 0.003}})  # r trains under modern
    with pytest.raises(ParamsError, match=r"modern\.lr: is set \(0.003\) but run.protocol is 'faithful' for every run"):
        parse({"run": {"studies": ["mnist_fashion_mlp"]}, "runs": {"r": HPS_RUN}, "modern": {"lr": 0.003}})
