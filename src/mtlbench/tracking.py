"""MLflow records. The only module that imports mlflow.

Layout (documented in the README, "MLflow layout"):
    experiment  <study>                     tagged for model development, described
      parent run  <variant> @ <label>       description (mean +- SD table, verdicts), resolved params,
                                            test metrics' mean/SD/CI, paired gains, delta-m, figures
        child run <variant> seed<k> @ ...   per-epoch curves at training time, test metrics,
                                            confusion matrices (PNG + counts), classification
                                            reports, reconstructions (PNG), datasets, models
Metric keys are `<task>/<metric>` on child runs and `<task>/<metric>_<stat>` on parent runs, the
same in every study, so MLflow's compare view lines runs up.

One current record per run: runs are matched on study, variant, role, seed and the hash of the
results they record; a complete match is reused, anything else of that identity replaced (README).

Runs are created with explicit ids through MlflowClient, never by resuming whatever run the
environment names: under `mlflow run`, MLFLOW_RUN_ID names the launcher's run, which is recorded as
a tag (`mtlbench.launcher_run_id`) on every run made here instead of being hijacked as a parent,
and which gets tags linking to the parent runs it produced.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE, MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from mtlbench.evaluate import (
    TEST_METRICS, SeedOutcome, VariantOutcome, compare_to_dedicated, curve_rows, grouped_mean_curves, task_comparisons,
    variant_table, verdict_lines, weight_rows,
)
from mtlbench.figures import average_loss_figure, confusion_figure, confusion_grid, png_array, reconstruction_grid

PARENT_STATS = ("mean", "sd")
COMPLETE = "mtlbench.complete"  # set last on a run: its record is whole (a killed evaluate leaves it unset)
EXPERIMENT_KIND = "custom_model_development"  # the MLflow UI's model-training view, not GenAI mode


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Artifacts beside a local SQLite store (not in the cwd, which `dvc exp run --temp` discards)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock beside a local SQLite store while it is first opened (MLflow creates and
    migrates a fresh database on first use, and two evaluate stages doing so at once crash) and
    while a study's record is written."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(tracking_uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


SERVER_LOCK_STALE_S = 1800  # a lock held longer than this by another machine is taken as left by a killed evaluate
SERVER_LOCK_POLL_S = 2.0


def server_lock_name(study: str) -> str:
    return f"mtlbench.lock.{study}"


def _holder_alive(tags: dict[str, str]) -> bool:
    """Whether the evaluate that took a lock may still hold it: on this machine, whether its process
    lives; on another, whether the lock is younger than SERVER_LOCK_STALE_S."""
    if tags.get("mtlbench.host") == os.uname().nodename:
        try:
            os.kill(int(tags.get("mtlbench.pid", "0")), 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True
    return time.time() - float(tags.get("mtlbench.since", "0")) < SERVER_LOCK_STALE_S


@contextlib.contextmanager
def server_lock(client: MlflowClient, study: str) -> Iterator[None]:
    """An exclusive lock on one study's record on a tracking server, so that two workspaces
    evaluating the same study through one `mlflow server` take turns (the second waits, then finds
    the first's complete record and reuses it) instead of deleting each other's half-written runs.

    The lock is a registered model named mtlbench.lock.<study>: the server refuses a second model of
    one name, which makes taking it atomic across machines (runs and tags have no such test-and-set).
    It is deleted when the record is written; one left by a killed evaluate is broken when its
    process is gone (same machine) or after SERVER_LOCK_STALE_S (another machine)."""
    from mlflow.exceptions import MlflowException

    name = server_lock_name(study)
    holder = {"mtlbench.host": os.uname().nodename, "mtlbench.pid": str(os.getpid()),
              "mtlbench.since": str(time.time())}
    waiting_said = False
    while True:
        try:
            client.create_registered_model(name, tags=holder, description=(
                f"mtlbench: an evaluate is writing {study}'s MLflow record; deleted when it is written"))
            break
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            tags = client.get_registered_model(name).tags
        except MlflowException:  # released between the two calls
            continue
        if not _holder_alive(tags):
            print(f"MLflow: {study}: breaking the record's lock left by a stopped evaluate ({tags.get('mtlbench.host')}, "
                  f"pid {tags.get('mtlbench.pid')})", file=sys.stderr)
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(name)
            continue
        if not waiting_said:
            print(f"MLflow: {study}: another evaluate ({tags.get('mtlbench.host')}, pid {tags.get('mtlbench.pid')}) is "
                  f"writing this record; waiting for it (delete the registered model {name} in the UI if that "
                  "evaluate was stopped)", file=sys.stderr)
            waiting_said = True
        time.sleep(SERVER_LOCK_POLL_S)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)


def record_lock(tracking_uri: str, client: MlflowClient, study: str):
    """The lock around writing one study's record: the file lock of a local SQLite store, the server
    lock of a tracking server (http[s]://); none for other stores."""
    if tracking_uri.startswith(("http://", "https://")):
        return server_lock(client, study)
    return store_lock(tracking_uri)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _ms(seconds: float | None) -> int | None:
    return None if not seconds else int(seconds * 1000)


def user_name() -> str:
    """The account that runs the stage (as MLflow's own fluent API records it), or "unknown"."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name: a container's uid without a passwd entry
        return "unknown"


def flat_settings(context: dict) -> dict[str, object]:
    """The resolved settings of results/<run>/context.json as params named as in params.yaml
    (`run.train_limit`, `run.stack_seeds`, `rsn2.init`; `accel.tf32` for the options used)."""
    out: dict[str, object] = {}
    for key, value in context.items():
        if key in ("data", "started_at", "ended_at"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[f"run.{key}"] = value
    return out


# A run's own params that the resolved settings hold too, under the name they have in the settings:
# each is logged once, as the setting (one `protocol.lr`, not `lr` beside it).
REPEATED = {"lr": "protocol.lr", "batch_size": "protocol.batch_size", "max_epochs": "protocol.max_epochs",
            "patience": "protocol.patience", "min_delta": "protocol.min_delta", "val_fraction": "protocol.val_fraction",
            "grad_clip": "protocol.grad_clip", "protocol": "protocol.name", "device": "run.device"}


def without_repeats(params: dict, settings: dict) -> dict:
    """`params` without those the settings hold under another name (REPEATED)."""
    return {k: v for k, v in params.items() if REPEATED.get(k) not in settings}


# A tracking server that does not answer: MLflow's defaults retry for about four minutes. The first
# request (the store's check) fails within seconds instead; the record's own requests keep the
# defaults (or the user's MLFLOW_HTTP_REQUEST_* settings), riding out a server's brief hiccups.
FIRST_REQUEST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextlib.contextmanager
def quick_failure() -> Iterator[None]:
    """FIRST_REQUEST's settings where the user set none, for the duration of the block."""
    added = {k: v for k, v in FIRST_REQUEST.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class Tracker:
    def __init__(self, tracking_uri: str, log_models: bool, root: Path, stage: str):
        self.tracking_uri = tracking_uri
        with store_lock(tracking_uri), quick_failure():
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.client.search_experiments(max_results=1)  # creates / migrates the store, under the lock
        self.log_models = log_models
        self.launcher_run_id = os.environ.pop("MLFLOW_RUN_ID", None)
        commit = git_commit(root)
        # Runs are named "<variant> @ <DVC experiment>" under `dvc exp run`, else "@ <commit>+<results>"
        self.exp_name = os.environ.get("DVC_EXP_NAME")
        self.commit = commit
        # "Created by" and "Source" in the runs table: who ran it, and the DVC stage that logged it
        self.base_tags = {MLFLOW_GIT_COMMIT: commit, "git_commit": commit, "dvc_stage": stage, MLFLOW_USER: user_name(),
                          MLFLOW_SOURCE_NAME: f"dvc stage {stage}", MLFLOW_SOURCE_TYPE: "LOCAL"}
        if self.exp_name:
            self.base_tags["mtlbench.dvc_exp"] = self.exp_name
        if self.launcher_run_id:
            self.base_tags["mtlbench.launcher_run_id"] = self.launcher_run_id

    # -------------------------------------------------------------- runs

    def _label(self, results_hash: str) -> str:
        return self.exp_name or f"{self.commit[:8]}+{results_hash[:6]}"

    def experiment_id(self, name: str, description: str = "") -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None and existing.lifecycle_stage == "deleted":
            # deleted in the UI: MLflow keeps the name taken until `mlflow gc`. The deleted one stays
            # deleted under another name, and the study's record starts afresh under its own
            aside = f"{name} (deleted {time.strftime('%Y-%m-%d %H:%M:%S')})"
            self.client.restore_experiment(existing.experiment_id)
            self.client.rename_experiment(existing.experiment_id, aside)
            self.client.delete_experiment(existing.experiment_id)
            print(f"MLflow experiment {name!r} was deleted; it stays deleted as {aside!r} (`mlflow gc` removes it "
                  "for good) and the study's record is logged afresh", file=sys.stderr)
            existing = None
        if existing is not None:
            experiment_id = existing.experiment_id
        else:
            root = artifact_root_for(self.tracking_uri)
            experiment_id = self.client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
        self.client.set_experiment_tag(experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND)
        if description:
            self.client.set_experiment_tag(experiment_id, MLFLOW_RUN_NOTE, description)
        return experiment_id

    def _create_run(self, experiment_id: str, name: str, tags: dict[str, str], parent: str | None = None,
                    start_time: int | None = None) -> str:
        all_tags = {**self.base_tags, **tags, MLFLOW_RUN_NAME: name}
        if parent:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent
        return self.client.create_run(experiment_id, tags=all_tags, run_name=name, start_time=start_time).info.run_id

    def _log(self, run_id: str, metrics: dict[str, float] | None = None, params: dict | None = None,
             steps: list[tuple[str, float, int, int]] = (), models: dict[str, str] | None = None) -> None:
        """Metrics at `now` (each linked to the logged model `models` names for it, if any), params,
        and (key, value, step, timestamp ms) curve points."""
        now = int(time.time() * 1000)
        models = models or {}
        metric_rows = [Metric(k, float(v), now, 0, model_id=models.get(k)) for k, v in (metrics or {}).items() if v is not None]
        metric_rows += [Metric(k, float(v), stamp or now, step) for k, v, step, stamp in steps]
        param_rows = [Param(k, str(v)) for k, v in (params or {}).items()]
        self.client.log_batch(run_id, metrics=metric_rows, params=param_rows)  # MLflow splits it into calls

    def _existing(self, experiment_id: str, tags: dict[str, str]) -> list:
        """Active runs carrying all of `tags` (the identity of a record: study, variant, role, seed)."""
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return self.client.search_runs([experiment_id], filter_string=query, run_view_type=ViewType.ACTIVE_ONLY,
                                       max_results=1000)

    def _reusable(self, experiment_id: str, identity: dict[str, str], record_key: str) -> str | None:
        """The id of a complete run of this identity and record key; every other run of the identity is
        an outdated or broken copy of the same record (killed evaluate, older evaluate code) and is
        deleted, so exactly one current record per identity remains."""
        keep = None
        same_record = {k: v for k, v in identity.items() if k != "mtlbench.results_hash"}  # other results too
        for run in self._existing(experiment_id, same_record):
            tags = run.data.tags
            if keep is None and tags.get(COMPLETE) == "true" and tags.get("mtlbench.record_key") == record_key:
                keep = run.info.run_id
            elif tags.get("mtlbench.results_hash") == identity.get("mtlbench.results_hash") or tags.get(COMPLETE) != "true":
                self.client.delete_run(run.info.run_id)
        return keep

    def _children(self, experiment_id: str, parent: str, seeds: Sequence[SeedOutcome]) -> dict[str, str]:
        """{seed: run id} of the complete seed runs under `parent` (missing seeds left out)."""
        found = {}
        for s in seeds:
            runs = [r for r in self._existing(experiment_id, {MLFLOW_PARENT_RUN_ID: parent, "mtlbench.seed": str(s.seed)})
                    if r.data.tags.get(COMPLETE) == "true"]
            if runs:
                found[str(s.seed)] = runs[0].info.run_id
        return found

    def _finish(self, run_id: str, end_time: int | None) -> None:
        self.client.set_tag(run_id, COMPLETE, "true")
        self.client.set_terminated(run_id, end_time=end_time)

    # -------------------------------------------------------------- the study

    def log_study(self, study: str, variants: list[VariantOutcome], report_markdown: str,
                  headline: Sequence[str] | None = None, context: dict | None = None,
                  description: str = "", figures: dict[str, bytes] | None = None,
                  comparisons: dict | None = None, affinity: dict | None = None) -> dict[str, dict]:
        """Log every variant of a study, one current record per run (`comparisons`: the study's
        compare_to_dedicated, as evaluate stored it; computed with the default margins if None; `affinity`:
        the run's affinity signals, logged on every parent beside its gains); returns {variant: {"parent": id,
        "seeds": {seed: id}}}.

        A run is identified by study, variant, role, seed (children) and the hash of the results it
        records. A complete run with the same record key (the results hash and everything logged from
        them) is reused as it is: an unchanged re-evaluation adds nothing, models included. Every other
        copy of it (incomplete, or from other evaluate code) is deleted and the run logged afresh.

        Every task's metrics, curves, confusion matrix and report are logged (the last two also as
        one confusion_matrices.json and one classification_reports.json per seed run). A study that
        names headline tasks (cifar100_binary: up to 100 tasks a run) gets per-task files and one
        confusion figure grid for those only.

        The whole record is written under a lock (record_lock: a local SQLite store's file lock, a
        tracking server's registered-model lock): two workspaces evaluating one study at once would
        otherwise each replace the other's half-written runs."""
        with record_lock(self.tracking_uri, self.client, study):
            return self._log_study(study, variants, report_markdown, headline, context or {}, description, figures,
                                   compare_to_dedicated(variants) if comparisons is None else comparisons,
                                   affinity_metrics(affinity))

    def _log_study(self, study: str, variants: list[VariantOutcome], report_markdown: str,
                   headline: Sequence[str] | None, context: dict, description: str,
                   figures: dict[str, bytes] | None, comparisons: dict, affinity: dict[str, float]) -> dict[str, dict]:
        experiment_id = self.experiment_id(study, description)
        settings = flat_settings(context)
        data = {name: d or {} for name, d in context.get("data", {}).items()}  # None: arrays without provenance
        digests = {name: d.get("digest", "unknown") for name, d in data.items()}
        data_tags = {f"mtlbench.data.{name}": digest for name, digest in digests.items()}
        data_tags["mtlbench.data_matches_official"] = str(all(d.get("matches", False) for d in data.values()))
        record = {}
        for outcome in variants:
            tags = {"mtlbench.study": study, "mtlbench.variant": outcome.variant, **data_tags}
            params = {**without_repeats(outcome.params, settings), **settings, "seeds": [s.seed for s in outcome.seeds]}
            metrics = {**_parent_metrics(outcome.summary, headline),
                       **_comparison_metrics(comparisons.get(outcome.variant, {}), headline), **affinity}
            note = parent_note(outcome, comparisons, headline)
            if data_tags["mtlbench.data_matches_official"] != "True" and data:  # unverified files: said first
                note = ("**Warning: trained on dataset files that are not the official ones (data.verify was "
                        "false); not comparable with the reference.**\n\n" + note)
            results_hash = _key([s.results_hash for s in outcome.seeds])
            identity = {"mtlbench.study": study, "mtlbench.variant": outcome.variant, "mtlbench.role": "parent",
                        "mtlbench.results_hash": results_hash}
            record_key = _key(results_hash, params, metrics, note, report_markdown, sorted(figures or {}), self.log_models)
            seeds = outcome.seeds
            parent = self._reusable(experiment_id, identity, record_key)
            if parent is not None:
                children = self._children(experiment_id, parent, seeds)
                if len(children) == len(seeds):
                    record[outcome.variant] = {"parent": parent, "seeds": children}
                    continue
                # seed runs deleted in the UI, or moved under another evaluation's parent (results A,
                # then B, then A again): the record is logged afresh, its intact seed runs reused
                print(f"MLflow: {study} {outcome.variant}: {len(seeds) - len(children)} of {len(seeds)} seed runs of "
                      f"its record {parent} are gone or moved (deleted in the UI, or another evaluation); "
                      "logging the record again", file=sys.stderr)
                self.client.delete_run(parent)
            starts = [t.started_at for s in seeds for t in s.tasks if t.started_at]
            ends = [t.epoch_ended_at[-1] for s in seeds for t in s.tasks if t.epoch_ended_at]
            parent = self._create_run(experiment_id, f"{outcome.variant} @ {self._label(results_hash)}",
                                      {**identity, **tags, "mtlbench.record_key": record_key, MLFLOW_RUN_NOTE: note},
                                      start_time=_ms(min(starts, default=None)))
            self._log(parent, params=params, metrics=metrics)
            self._log_datasets(parent, digests)  # the parents, compared side by side, show their data too
            self.client.log_dict(parent, outcome.summary, "seed_statistics.json")
            self.client.log_text(parent, report_markdown, "report.md")
            for name, png in (figures or {}).items():
                self.client.log_image(parent, png_array(png), name)
            if grouped_mean_curves(outcome, outcome.seeds[0]):
                self.client.log_figure(parent, average_loss_figure(outcome), "average_loss_curves.png")
            children = {str(s.seed): self._log_seed(experiment_id, parent, outcome, s, tags, params, digests, headline)
                        for s in seeds}
            self._finish(parent, _ms(max(ends, default=None)))
            record[outcome.variant] = {"parent": parent, "seeds": children}
        if self.launcher_run_id:  # `mlflow run .`: the launcher's run links to what it produced
            for variant, runs in record.items():
                self.client.set_tag(self.launcher_run_id, f"mtlbench.produced.{study}.{variant}",
                                    f"experiment {experiment_id}, parent run {runs['parent']}")
        return record

    def _log_seed(self, experiment_id: str, parent: str, outcome: VariantOutcome, seed: SeedOutcome, tags: dict,
                  params: dict, digests: dict[str, str], headline: Sequence[str] | None = None) -> str:
        """One seed's run, reused (moved under the new parent) when its record is unchanged."""
        steps, metrics = [], seed_metrics(seed)
        for t in seed.tasks:
            stamps = {i + 1: _ms(s) for i, s in enumerate(t.epoch_ended_at)}
            for row in curve_rows(t.history, t.task) + weight_rows(t.history, t.task):
                epoch = int(row["epoch"])
                steps += [(f"{t.task}/{k}", v, epoch, stamps.get(epoch)) for k, v in row.items() if k != "epoch"]
        stamps = {i + 1: _ms(s) for i, s in enumerate(seed.tasks[0].epoch_ended_at)}
        for group, rows in grouped_mean_curves(outcome, seed).items():
            for row in rows:
                epoch = int(row["epoch"])
                steps += [(f"mean_{group}/{k}", v, epoch, stamps.get(epoch)) for k, v in row.items() if k != "epoch"]
        run_params = {**params, "seed": seed.seed}
        run_params.pop("seeds", None)
        identity = {"mtlbench.study": tags["mtlbench.study"], "mtlbench.variant": outcome.variant, "mtlbench.role": "seed",
                    "mtlbench.seed": str(seed.seed), "mtlbench.results_hash": seed.results_hash}
        record_key = _key(seed.results_hash, run_params, metrics, steps, self.log_models)
        reused = self._reusable(experiment_id, identity, record_key)
        if reused is not None:
            self.client.set_tag(reused, MLFLOW_PARENT_RUN_ID, parent)
            return reused
        starts = [t.started_at for t in seed.tasks if t.started_at]
        ends = [t.epoch_ended_at[-1] for t in seed.tasks if t.epoch_ended_at]
        run = self._create_run(experiment_id, f"{outcome.variant} seed{seed.seed} @ {self._label(seed.results_hash)}",
                               {**tags, **identity, "mtlbench.record_key": record_key}, parent=parent,
                               start_time=_ms(min(starts, default=None)))
        self._log_artifacts(run, outcome, seed, headline)
        # models first, then the metrics, each linked to the model of its task: MLflow links every
        # step-0 metric a run already has to a model logged into it, the other tasks' included
        model_ids = self._log_models(run, seed) if self.log_models else {}
        self._log(run, params=run_params, metrics=metrics, steps=steps, models=metric_models(seed, model_ids))
        self._log_datasets(run, digests)
        self._finish(run, _ms(max(ends, default=None)))
        return run

    def _log_datasets(self, run_id: str, digests: dict[str, str]) -> None:
        """The datasets the run trained and was tested on, by content digest (mlflow's Datasets tab)."""
        inputs = [DatasetInput(Dataset(name=name, digest=digest, source_type="local",
                                       source=json.dumps({"prepared": f"data/prepared/{name}.npz"})),
                               tags=[InputTag("mlflow.data.context", "train+test")])
                  for name, digest in digests.items()]
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    def _log_artifacts(self, run: str, outcome: VariantOutcome, seed: SeedOutcome, headline: Sequence[str] | None) -> None:
        labelled = [t for t in seed.tasks if t.is_classification]
        if labelled:
            self.client.log_dict(run, {t.task: {"labels": t.class_names, "matrix": t.matrix.tolist()} for t in labelled},
                                 "confusion_matrices.json")
            self.client.log_dict(run, {t.task: t.report_dict for t in labelled}, "classification_reports.json")
        for t in seed.tasks:
            if t.samples is not None:
                self.client.log_figure(run, reconstruction_grid(*t.samples, f"{outcome.variant} {t.task} seed {seed.seed}"),
                                       f"{t.task}/reconstructions.png")
        shown = [t for t in labelled if headline is None or t.task in headline]
        if headline is not None and shown:
            self.client.log_figure(run, confusion_grid(shown, f"{outcome.variant} seed {seed.seed}"), "confusion_matrices.png")
        for t in shown:
            self.client.log_dict(run, {"labels": t.class_names, "matrix": t.matrix.tolist()},
                                 f"{t.task}/confusion_matrix.json")
            if headline is None:
                self.client.log_figure(run, confusion_figure(t.matrix, t.class_names, f"{outcome.variant} {t.task} seed {seed.seed}"),
                                       f"{t.task}/confusion_matrix.png")
            self.client.log_text(run, t.text_report(), f"{t.task}/classification_report.txt")
            self.client.log_dict(run, t.report_dict, f"{t.task}/classification_report.json")

    def _log_models(self, run_id: str, seed: SeedOutcome) -> dict[str, str]:
        """Each model as an MLflow pytorch model behind serving.FlatIO (one 2-D input: the tasks'
        images flattened side by side; one 2-D output: their logits), with a signature and an
        input example, so `mlflow.pyfunc.load_model(uri).predict(example)` works for every variant.
        Returns {model name: MLflow model id}."""
        ids = {}
        import torch
        from mlflow.models import infer_signature

        import mtlbench
        from mtlbench.models.store import load_model
        from mtlbench.serving import FlatIO, example_input, input_shapes

        mlflow.set_tracking_uri(self.tracking_uri)
        # Pickle is the deliberate format (pt2 export needs example inputs per model); say so once
        # in the README rather than once per model in every log.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        logging.getLogger("mlflow.models.model").setLevel(logging.ERROR)
        with mlflow.start_run(run_id=run_id):  # log_model needs an active run; this id is explicit
            for name, path in seed.models.items():
                model = load_model(path)
                saved = torch.load(path, map_location="cpu", weights_only=True)
                packed = saved if saved["spec"]["kind"] == "rsn2" else None
                served = FlatIO(model, input_shapes(model, saved["spec"]), packed=packed).eval()
                example = example_input(served.in_shapes)
                with torch.inference_mode():
                    output = served(example)
                ids[name] = mlflow.pytorch.log_model(
                    served, name=name, serialization_format="pickle",
                    signature=infer_signature(example.numpy(), output.numpy()), input_example=example.numpy(),
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                    code_paths=[str(Path(mtlbench.__file__).parent)],  # model classes unpickle from it
                    params={"tasks": ",".join(seed.model_tasks.get(name, []))},
                ).model_id
        return ids


JOINT = "joint"  # a multitask fit's own records (its validation loss, its time): one copy, not one per task


def missing_runs(tracking_uri: str, run_ids: Sequence[str]) -> list[str]:
    """The ids the store at `tracking_uri` does not hold as active runs (deleted in the UI, or gone
    with the store): `make records` (records.py)."""
    from mlflow.exceptions import MlflowException

    client, missing = MlflowClient(tracking_uri), []
    for run_id in run_ids:
        try:
            if client.get_run(run_id).info.lifecycle_stage != "active":
                missing.append(run_id)
        except MlflowException:
            missing.append(run_id)
    return missing


def seed_metrics(seed: SeedOutcome) -> dict[str, float]:
    """A seed run's test metrics and fit records as `<task>/<metric>`; a multitask fit's joint
    records (`joint_<record>` in every task's metrics, all equal) once, as `joint/<record>`."""
    out = {}
    for t in seed.tasks:
        for key, value in t.metrics.items():
            joint = key.removeprefix(f"{JOINT}_")
            out[f"{JOINT}/{joint}" if joint != key else f"{t.task}/{key}"] = value
    return out


def metric_models(seed: SeedOutcome, model_ids: dict[str, str]) -> dict[str, str]:
    """{metric key: id of the logged model it measures}: a task's metrics belong to the model that
    serves the task; joint records to the multitask model (the one model serving several tasks)."""
    task_model = {task: model_ids[name] for name, tasks in seed.model_tasks.items() if name in model_ids for task in tasks}
    joint_models = {model_ids[name] for name, tasks in seed.model_tasks.items() if name in model_ids and len(tasks) > 1}
    out = {}
    for key in seed_metrics(seed):
        owner, _, _ = key.partition("/")
        if owner in task_model:
            out[key] = task_model[owner]
        elif owner == JOINT and len(joint_models) == 1:
            out[key] = next(iter(joint_models))
    return out


def parent_note(outcome: VariantOutcome, comparisons: dict, headline: Sequence[str] | None) -> str:
    """The parent run's description (MLflow's run page shows it first): the variant's test scores,
    mean +- SD over seeds, and its verdicts against the dedicated models."""
    rows = [t for t in outcome.summary if headline is None or t in headline]
    lines = []
    if outcome.variant in comparisons:
        lines += [f"**{outcome.variant} against dedicated**, paired by seed:", ""]
        lines += [f"- {line}" for line in verdict_lines({outcome.variant: comparisons[outcome.variant]}, headline)]
        lines += [""]
    lines += [f"**{outcome.variant}**, {len(outcome.seeds)} seeds: test score, mean +- SD", "",
              variant_table([outcome], rows), ""]
    return "\n".join(lines)


ANSWER = "answer"  # the parent's metrics that answer the question: the first chart group, short names


def affinity_metrics(affinity: dict | None) -> dict[str, float]:
    """The run's affinity signals (mtlbench.affinity), means over seeds: `affinity/cosine` and
    `affinity/lookahead` (over every pair), and per pair `affinity/cosine_<a>_<b>` and
    `affinity/lookahead_<a>_to_<b>` (MLflow keys allow neither | nor >)."""
    if not affinity or not affinity.get("measured"):
        return {}
    out = {f"affinity/{k}": v for k, v in affinity["summary"].items()}
    for signal, rename in (("cosine", lambda k: k.replace("|", "_")), ("lookahead", lambda k: k.replace("->", "_to_"))):
        pairs = {pair for s in affinity["seeds"].values() for pair in s[signal]}
        for pair in sorted(pairs):
            out[f"affinity/{signal}_{rename(pair)}"] = statistics.fmean(s[signal][pair] for s in affinity["seeds"].values())
    return out


def _comparison_metrics(entry: dict, headline: Sequence[str] | None = None) -> dict[str, float]:
    """The answer, in one chart group that sorts first and names short enough for a chart title:
    per task the paired gain over dedicated (positive = better; accuracy as a fraction) with its 95%
    CI bounds over seeds and test items, its Holm p and the equivalence test's Holm p
    (`answer/<task>_gain`, `_lo`, `_hi`, `_p`, `_p_equiv`), and delta-m in % with its CI
    (`answer/delta_m`, `_lo`, `_hi`)."""
    out = {}
    for task, diffs in task_comparisons(entry).items():
        c = diffs.get("paired")
        if c is None or (headline is not None and task not in headline):
            continue
        out[f"{ANSWER}/{task}_gain"] = c["mean"]
        interval = (c.get("crossed") or c)["ci95"]
        if interval is not None:
            out[f"{ANSWER}/{task}_gain_lo"], out[f"{ANSWER}/{task}_gain_hi"] = interval
            out[f"{ANSWER}/{task}_gain_p"] = c["p_holm"]
            if c.get("p_tost_holm") is not None:
                out[f"{ANSWER}/{task}_gain_p_equiv"] = c["p_tost_holm"]
    if "delta_m" in entry:
        out[f"{ANSWER}/delta_m"] = entry["delta_m"]["mean"]
        if entry["delta_m"]["ci95"] is not None:
            out[f"{ANSWER}/delta_m_lo"], out[f"{ANSWER}/delta_m_hi"] = entry["delta_m"]["ci95"]
    return out


def _parent_metrics(summary: dict, headline: Sequence[str] | None = None) -> dict[str, float]:
    """The test metrics' mean, SD and 95% CI bounds over seeds (beyond a study's headline tasks,
    of the primary metric only)."""
    out = {}
    for task, by_metric in summary.items():
        shown = [m for m in TEST_METRICS if m in by_metric]
        if headline is not None and task not in headline:
            shown = shown[:1]
        for metric in shown:
            s = by_metric[metric]
            for stat in PARENT_STATS:
                out[f"{task}/{metric}_{stat}"] = s[stat]
            if s["ci95"] is not None:
                out[f"{task}/{metric}_ci95_low"], out[f"{task}/{metric}_ci95_high"] = s["ci95"]
    return out


