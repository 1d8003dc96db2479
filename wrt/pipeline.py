"""One run: source model → key and embedding → attack → evaluation → one JSON file (`wrt.record`).

Source models, keys and marked models come from the artifact store when an earlier run made
them (keyed by the configs that determine them), so sweeps train each once. Whatever fails
inside a stage is recorded in the run's JSON (status "failed", the error and the stage).
"""

from __future__ import annotations

import copy
import importlib.util
import dataclasses
import json
import platform
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import wrt
from wrt.attacks.base import Attack, AttackContext, AttackerData
from wrt.config import ablated_of, as_dict, build, params_of
from wrt.data import Dataset
from wrt.hardware import cpu_model, resolve_precision
from wrt.record import (AttackData, AttackRecord, AttackUsage, Embedding, Evaluation, Extracted, MarkedEvaluation, NullKeys,
                        PeakMemory, RunRecord, SchemeRecord, SourceRecord, Timing, Versions, to_json)
from wrt.schemes.base import Key, KeyMismatch, Scheme
from wrt.store import Store, atomic_write_json, error_summary, file_lock, load_state, spec_digest
from wrt.train import Trainer
from wrt.validation import SEED_MAX, InvalidParameter, check_output_dirs, require

VOLATILE_KEYS = ("results_dir", "store_dir", "force", "progress", "device", "checkpoint_every",
                 "dry_run", "precision", "theta")  # do not change results (`precision` enters resolved, as
                                                   # `numerics`; `theta`: only a search's objective uses it)
# An active scheme (`Scheme.active`, DAWN) answers only through its wrapper: attacks of these categories need
# the model's weights or its inputs before the wrapper, so the attacker first extracts a model from the wrapper
# with the retraining attack's config (the Table V retraining row) and attacks that (SoK Fig. 3: "For DAWN,
# the attacker has to obtain white-box access by extracting the source model before using other attacks").
EXTRACT_FIRST = ("input_preprocessing", "model_modification", "obfuscation")
EXTRACTION_CONFIG = Path(wrt.CONFIG_DIR) / "attack" / "retraining.yaml"


def torchvision_version() -> str:
    """`torchvision.__version__` (with its build label, e.g. `+cu130`), read from its version module: importing
    torchvision imports its models and torch._dynamo (~1.7 s in every `wrt-run`), which a run on a built-in
    dataset and model never needs."""
    folder = importlib.util.find_spec("torchvision").submodule_search_locations[0]
    return re.search(r"__version__ = '([^']+)'", (Path(folder) / "version.py").read_text()).group(1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def role_of(cfg: DictConfig) -> str:
    """`marked` or `null` (`role=null` on the command line arrives as YAML null)."""
    role = "null" if cfg.role is None else cfg.role
    require(role in ("marked", "null"), "role", cfg.role, "marked or null")
    return role


def check_run_config(cfg: DictConfig) -> None:
    """Check the run-level settings before any data is loaded — types and ranges, seeds within torch's
    range, a GPU for `device=cuda`, writable output folders — and build the scheme and attack (their
    constructors check their own parameters), so that a bad value is one error before the run starts."""
    def is_int(value, low):
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    role_of(cfg)
    attacker_data(cfg)
    for key in ("seed", "split_seed"):
        require(is_int(cfg[key], 0) and cfg[key] <= SEED_MAX, key, cfg[key], f"an integer in [0, {SEED_MAX}]")
    require(is_int(cfg.null_seed_offset, 1) and cfg.seed + cfg.null_seed_offset <= SEED_MAX, "null_seed_offset",
            cfg.null_seed_offset, f"an integer ≥ 1 with seed + null_seed_offset ≤ {SEED_MAX}")
    require(is_int(cfg.null_keys, 1) and cfg.null_keys <= Scheme.max_null_keys, "null_keys", cfg.null_keys,
            f"an integer in [1, {Scheme.max_null_keys}] (a scheme with a costly keygen measures at most its "
            "own, lower max_null_keys)")
    require(is_int(cfg.checkpoint_every, 0), "checkpoint_every", cfg.checkpoint_every, "an integer ≥ 0")
    require(isinstance(cfg.device, str) and (cfg.device in ("auto", "cpu", "cuda") or
            cfg.device.removeprefix("cuda:").isdigit()), "device", cfg.device, "auto, cpu, cuda or cuda:N")
    if cfg.device.startswith("cuda"):
        index = int(cfg.device.removeprefix("cuda").removeprefix(":") or 0)
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        require(index < gpus, "device", cfg.device, f"auto, cpu, cuda or cuda:N with N < {gpus}" if gpus
                else "auto or cpu (no CUDA GPU is available on this machine)")
    for key in ("force", "progress", "dry_run"):
        require(isinstance(cfg[key], bool), key, cfg[key], "true or false")
    study = cfg.get("study")
    require(study is None or (isinstance(study, str) and re.fullmatch(r"[A-Za-z0-9_.+=-]{1,100}", study) is not None),
            "study", study, "null or a name of at most 100 letters, digits and _ . + = -")
    for node in ("source_trainer", "trainer"):  # the per-trainer settings that `precision` replaced
        for old in ("cpu_bf16", "amp"):
            require(old not in cfg.budget[node], f"budget.{node}.{old}", cfg.budget[node].get(old),
                    "absent: the top-level precision=fp32|bf16|auto sets every trainer")
    numerics(cfg)  # precision: one of fp32, bf16, auto, and bf16 only where the CPU has it
    for key in ("max_train", "max_test"):
        value = cfg.budget[key]
        require(value is None or is_int(value, 1), f"budget.{key}", value, "null or an integer ≥ 1")
    for group in ("scheme", "attack"):
        try:
            build(cfg[group])
        except InvalidParameter:
            raise
        except Exception as e:  # e.g. an unknown parameter: the constructor's TypeError
            raise InvalidParameter(f"{group}.{cfg[group].name}: {error_summary(e)}") from None
    check_output_dirs(cfg)  # last: it creates the folders


def attacker_data(cfg: DictConfig) -> AttackerData:
    """The attacker's data budget from the config (validated; absent: the whole protocol)."""
    node = as_dict(cfg).get("attacker_data") or {}
    require(isinstance(node, dict), "attacker_data", node, "a mapping with keys fraction, count, labels, domain")
    unknown = sorted(set(node) - {f.name for f in dataclasses.fields(AttackerData)})
    require(not unknown, "attacker_data", unknown, "keys fraction, count, labels, domain")
    return AttackerData(**node)


def numerics(cfg: DictConfig) -> dict:
    """What decides a run's floats besides its config: the device type, the resolved precision
    (`precision=auto` becomes `bf16` autocast or `fp32`, `wrt.hardware.resolve_precision`) and, on the
    CPU, torch's thread count. Part of every run name and store key, so results of different
    numerics are never mixed up (docs/reliability.md)."""
    device = resolve_device(cfg.device)
    return {"device": device.type, "precision": resolve_precision(cfg.precision, device),
            "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None}


def without_search(node):
    """A config without its `search:` blocks (an attack's and its steps'): the attacker's search space
    is no part of a run, so adding one to a config keeps its runs' names."""
    if isinstance(node, dict):
        return {k: without_search(v) for k, v in node.items() if k != "search"}
    return node


def run_name(cfg: DictConfig) -> str:
    """A stable file name for a run: the same config and numerics always map to the same file
    (resume). The default attacker data budget, and `study` when no search ran it, are left out of
    the hash, so runs from before they existed keep their names; so are `search:` blocks."""
    stable = {k: v for k, v in as_dict(cfg).items() if k not in VOLATILE_KEYS}
    stable["attack"], stable["scheme"] = without_search(stable["attack"]), without_search(stable["scheme"])
    stable["numerics"] = numerics(cfg)
    if stable.get("study") is None:
        stable.pop("study", None)
    if attacker_data(cfg) == AttackerData():
        stable.pop("attacker_data", None)
    if role_of(cfg) == "marked" or cfg.get("null_keys") == 1:  # changes only null runs; 1 key: as before
        stable.pop("null_keys", None)
    return (f"{role_of(cfg)}_{cfg.scheme.name}_{cfg.attack.name}_{cfg.dataset.name}_{cfg.model.name}"
            f"_{cfg.budget.name}_s{cfg.seed}_{spec_digest(stable)[:8]}")


def run_path(cfg: DictConfig) -> Path:
    return Path(cfg.results_dir) / "runs" / f"{run_name(cfg)}.json"


def load_data(cfg: DictConfig) -> Dataset:
    data = build(cfg.dataset, split_seed=cfg.split_seed)
    return data.subset(cfg.budget.max_train, cfg.budget.max_test, seed=0)


def peak_memory() -> PeakMemory:
    """The process's RSS high-water mark so far, and the CUDA peak since the last reset."""
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return PeakMemory(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      None if cuda is None else round(cuda, 1))


def new_record(cfg: DictConfig) -> RunRecord:
    """A run's record before its first stage: what the config and this machine say (docs/run_json.md)."""
    settings = numerics(cfg)
    searched = cfg.get("study") is not None  # a trial of an adaptive attacker's search (wrt/search.py)
    return RunRecord(
        run_name=run_name(cfg), dataset=cfg.dataset.name, model=cfg.model.name, budget=cfg.budget.name,
        seed=cfg.seed, role=role_of(cfg),
        scheme=SchemeRecord(name=cfg.scheme.name, params=params_of(cfg.scheme), ablated=ablated_of(cfg.scheme)),
        attack=AttackRecord(name=cfg.attack.name, params=params_of(cfg.attack),
                            ablated=ablated_of(cfg.attack, searched=searched), searched=searched or None,
                            study=cfg.get("study")),
        cpu_s=Timing(), device=settings["device"], precision=settings["precision"], cpu_threads=settings["cpu_threads"],
        cpu=cpu_model(), versions=Versions(wrt.__version__, torch.__version__, torchvision_version(),
                                           platform.python_version()),
        config=as_dict(cfg))


def null_key_seed(seed: int, draw: int) -> int:
    """The generator seed of a null run's key draw `draw`: draw 0 is the run's own key (`seed`, the marked
    runs' key), every further draw its own seed derived from (seed, draw)."""
    return seed if draw == 0 else int(np.random.SeedSequence([seed, draw]).generate_state(1, np.uint64)[0])


# Part of a marked model's store key: raised when embedding changes what it computes for the same
# config (2: embeddings run to their stopping rule, capped, not scaled by the budget; #16).
EMBEDDING_VERSION = 2
# Part of a stored evaluation's key: raised when `Run.evaluate` or the source's test accuracy changes what it computes.
EVALUATION_VERSION = 1


def source_spec(cfg: DictConfig, seed: int) -> dict:
    """What determines the source model of `seed` (its store key)."""
    budget = cfg.budget
    return {"dataset": as_dict(cfg.dataset), "model": as_dict(cfg.model), "seed": seed,
            "max_train": budget.max_train, "max_test": budget.max_test,
            "trainer": as_dict(budget.source_trainer), "split_seed": cfg.split_seed,
            "numerics": numerics(cfg)}


class Stages:
    """The stage a run is in (a failure is recorded with it) and each stage's time and memory."""

    def __init__(self, record: RunRecord):
        self.record = record
        self.current = "config"  # parameters are validated before anything is loaded

    @contextmanager
    def timed(self, stage: str):
        self.current = stage
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start, cpu_start = time.perf_counter(), time.process_time()
        yield
        self.record.timing_s.add(stage, time.perf_counter() - start)
        self.record.cpu_s.add(stage, time.process_time() - cpu_start)
        self.record.memory.stages[stage] = peak_memory()


class Run:
    """One run, complete on construction: its config, data, device, store, trainers, scheme and
    attack. `execute` runs the stages that follow the data into a record."""

    def __init__(self, cfg: DictConfig, data: Dataset, scheme: Scheme, attack: Attack):
        self.cfg, self.data, self.scheme, self.attack = cfg, data, scheme, attack
        self.device = resolve_device(cfg.device)
        self.store = Store(cfg.store_dir, force=cfg.force)
        self.role = role_of(cfg)
        self.source_trainer = self.trainer(cfg.budget.source_trainer)
        self.finetune_trainer = self.trainer(cfg.budget.trainer)
        # Table V's rows and the cheap fine-tuning attacks may run at the paper's epochs
        paper_scale = cfg.budget.get("paper_epoch_scale")
        self.attack_trainer = (self.trainer(cfg.budget.trainer, epoch_scale=paper_scale)
                               if attack.paper_epochs and paper_scale is not None else self.finetune_trainer)

    def trainer(self, node, **overrides) -> Trainer:
        return build(node, device=self.device, precision=self.cfg.precision, progress=self.cfg.progress,
                     seed=self.cfg.seed, **overrides)

    def new_model(self, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        data = self.data
        return build(self.cfg.model, num_classes=data.num_classes, in_channels=data.image_shape[0],
                     mean=list(data.mean), std=list(data.std))

    # ---- stages ---------------------------------------------------------------------------

    def source_model(self, seed: int) -> tuple[torch.nn.Module, dict, bool]:
        """The unmarked model trained on the defender's data with `seed` (cached)."""
        model = self.new_model(seed)

        def train():
            images, labels = self.data.defender()
            start = time.perf_counter()
            self.source_trainer.fit(model, images, labels, augment=self.data.augment, desc="source",
                                    checkpoint=checkpoint if self.cfg.checkpoint_every else None,
                                    checkpoint_every=self.cfg.checkpoint_every or 1)
            return model.state_dict(), {"train_time_s": time.perf_counter() - start}

        spec = source_spec(self.cfg, seed)
        checkpoint = self.store.checkpoint_path("source", spec)  # a killed run resumes here
        state, meta, cached = self.store.get_or_create("source", spec, train)
        load_state(model, state, self.store.path("source", spec))
        return self.source_trainer.prepare(model).eval(), meta, cached

    def key_spec(self) -> dict:
        return {"source": source_spec(self.cfg, self.cfg.seed), "scheme": as_dict(self.cfg.scheme)}

    def key(self, source: torch.nn.Module) -> Key:
        spec = self.key_spec()

        def keygen():
            key = self.scheme.keygen(source, self.data, torch.Generator().manual_seed(self.cfg.seed))
            return key.tensors, key.meta

        tensors, meta, _ = self.store.get_or_create("key", spec, keygen)
        meta = {k: v for k, v in meta.items() if k != "spec"}
        return Key(tensors, meta)

    def null_scores(self, source, null_model, key: Key, first: float) -> NullKeys:
        """The watermark accuracies of `null_keys` key draws (at most the scheme's `max_null_keys`) on the
        null model (SoK §VII-A, Appendix XV: θ from many keys on many unmarked models). Each draw is made
        for the source model like the run's own key (draw 0, accuracy `first`), from `null_key_seed`."""
        draws = min(self.cfg.null_keys, self.scheme.max_null_keys)
        accs, keygen_s, extract_s = [first], 0.0, 0.0
        for draw in range(1, draws):
            start = time.perf_counter()
            drawn = self.scheme.keygen(source, self.data, torch.Generator().manual_seed(null_key_seed(self.cfg.seed,
                                                                                                      draw)))
            middle = time.perf_counter()
            try:
                accs.append(float(self.scheme.extract(null_model, drawn, self.finetune_trainer)))
            except KeyMismatch:
                accs.append(0.0)
            keygen_s, extract_s = keygen_s + middle - start, extract_s + time.perf_counter() - middle
        return NullKeys(keys=draws, wm_accs=accs, keygen_time_s=round(keygen_s, 3),
                        extract_time_s=round(extract_s, 3))

    def embed_spec(self) -> dict:
        trainer = self.cfg.budget.source_trainer if self.scheme.while_training else self.cfg.budget.trainer
        return {"source": source_spec(self.cfg, self.cfg.seed), "scheme": as_dict(self.cfg.scheme),
                "trainer": as_dict(trainer), "embedding_version": EMBEDDING_VERSION}

    def artifacts(self) -> list[tuple[str, dict]]:
        """(kind, spec) of the stored models this run uses: its source model(s), for a marked run its
        marked model, and the model extracted before a white-box attack on an active scheme (for the
        sweep plan, wrt/plan.py)."""
        extracted = [("extracted", self.extraction_spec())] if self.extracts_first() else []
        if self.role == "null":
            return [("source", source_spec(self.cfg, self.cfg.seed)),
                    ("source", source_spec(self.cfg, self.cfg.seed + self.cfg.null_seed_offset)), *extracted]
        return [("source", source_spec(self.cfg, self.cfg.seed)), ("marked", self.embed_spec()), *extracted]

    def embed(self, source: torch.nn.Module, key: Key) -> tuple[torch.nn.Module, dict, bool]:
        """(marked model, its stored meta: embed time and how it stopped, cached): the scheme fine-tunes
        a copy of the source model, or trains a fresh one (seeded like the source) with the source setup
        if it embeds while training."""
        fresh = self.scheme.while_training
        spec = self.embed_spec()
        model = self.new_model(self.cfg.seed) if fresh else copy.deepcopy(source)
        trainer = self.source_trainer if fresh else self.finetune_trainer

        def embed():
            start = time.perf_counter()
            marked = self.scheme.embed(model, self.data, key, trainer)
            return marked.state_dict(), {"embed_time_s": time.perf_counter() - start,
                                         "embedding": self.scheme.embedding}

        state, meta, cached = self.store.get_or_create("marked", spec, embed)
        load_state(model, state, self.store.path("marked", spec))
        return model.eval(), meta, cached

    def attack_context(self, trainer: Trainer) -> AttackContext:
        """The context an attack (or the extraction before one) runs in: the run's data, `trainer` for fine-tuning,
        the source setup and a fresh model of seed + 1 for training from scratch, the attacker's randomness (the
        run's seed), the store and the attacker's data budget."""
        return AttackContext(self.data, trainer, self.source_trainer, lambda: self.new_model(self.cfg.seed + 1),
                             self.scheme, self.cfg.seed, store=self.store, attacker_data=attacker_data(self.cfg))

    def extracts_first(self) -> bool:
        """Whether the attacker must extract a model from the deployed one before its attack (`EXTRACT_FIRST`)."""
        return self.scheme.active and self.attack.category in EXTRACT_FIRST

    def extraction_spec(self) -> dict:
        """What determines the model extracted from the deployed one (its store key): the deployed model, the
        wrapper's key, the extraction's config, the attacker's data budget, the source training setup, the seed."""
        deployed = (self.embed_spec() if self.role == "marked"
                    else {"source": source_spec(self.cfg, self.cfg.seed + self.cfg.null_seed_offset)})
        return {"deployed": deployed, "role": self.role, "attack": as_dict(OmegaConf.load(EXTRACTION_CONFIG)),
                "attacker_data": dataclasses.asdict(attacker_data(self.cfg)), "seed": self.cfg.seed}

    def extract_model(self, deployed: torch.nn.Module, key: Key) -> tuple[torch.nn.Module, Extracted]:
        """The model the attacker extracts from `deployed` (cached per `extraction_spec`, so all white-box rows of
        a (scheme config, seed) share one), with its record: test and watermark accuracy, queries, time."""
        spec = self.extraction_spec()
        extraction = build(spec["attack"])

        def extract():
            start = time.perf_counter()
            ctx = self.attack_context(self.finetune_trainer)
            model = extraction(copy.deepcopy(deployed), ctx)
            seconds = time.perf_counter() - start
            evaluation = self.evaluate(model, key)
            return model.state_dict(), {"time_s": round(seconds, 3), "queries": ctx.usage["queries"],
                                        "test_acc": evaluation.test_acc, "wm_acc": evaluation.wm_acc}

        state, meta, cached = self.store.get_or_create("extracted", spec, extract)
        model = self.new_model(self.cfg.seed + 1)
        load_state(model, state, self.store.path("extracted", spec))
        return self.source_trainer.prepare(model).eval(), Extracted(
            attack=spec["attack"]["name"], params=params_of(spec["attack"]), test_acc=meta["test_acc"],
            wm_acc=meta["wm_acc"], queries=meta["queries"], time_s=meta["time_s"], cached=cached)

    def evaluation_specs(self) -> dict[str, dict]:
        """The store keys ("evaluation") of the evaluations that runs share: the source model's test accuracy
        and, for a marked run, the deployed marked model's test and watermark accuracy. Every run of a sweep
        evaluates the same models on the same test set and key (~2 s each on one core)."""
        common = {"trainer": as_dict(self.cfg.budget.trainer), "evaluation_version": EVALUATION_VERSION}
        specs = {"source": {"model": {"source": source_spec(self.cfg, self.cfg.seed)}, **common}}
        if self.role == "marked":
            specs["marked"] = {"model": {"deployed": self.embed_spec()}, **common}
        return specs

    def evaluated_once(self, spec: dict, evaluate: Callable[[], dict]) -> dict:
        """`evaluate()`, computed by the first run that needs it and read from the store by the others."""
        _, meta, _ = self.store.get_or_create("evaluation", spec, lambda: ({}, evaluate()))
        return {k: v for k, v in meta.items() if k != "spec"}

    def evaluate(self, model, key) -> Evaluation:
        """Test accuracy and watermark accuracy; a key that no longer fits the model (its layer
        is gone or reshaped) verifies nothing: watermark accuracy 0 and the reason recorded."""
        test_acc = self.finetune_trainer.accuracy(model, self.data.test_x, self.data.test_y)
        try:
            wm_acc = self.scheme.extract(model, key, self.finetune_trainer)
        except KeyMismatch as e:
            return Evaluation(test_acc, 0.0, f"KeyMismatch: {e}")
        return Evaluation(test_acc, None if wm_acc != wm_acc else wm_acc)

    def execute(self, stages: Stages) -> None:
        """Source model → key → embedding → evaluation → attack → evaluation, into `stages.record`."""
        cfg, r, scheme = self.cfg, stages.record, self.scheme
        with stages.timed("source"):
            source, source_meta, cached = self.source_model(cfg.seed)
            evaluations = self.evaluation_specs()
            test_acc = self.evaluated_once(evaluations["source"], lambda: {
                "test_acc": self.finetune_trainer.accuracy(source, self.data.test_x, self.data.test_y)})["test_acc"]
            r.source = SourceRecord(test_acc, cached, source_meta["train_time_s"])
        with stages.timed("keygen"):
            key = self.key(source)
            r.scheme.key_size = scheme.key_length(key)
            r.scheme.key_meta = key.meta
        with stages.timed("embed"):
            if self.role == "null":
                marked, _, cached = self.source_model(cfg.seed + cfg.null_seed_offset)
                embed_meta = {}
            else:
                marked, embed_meta, cached = self.embed(source, key)
            # only the defender's own model is deployed behind an active scheme's wrapper
            # (DAWN); an unmarked model answers for itself
            deployed = scheme.wrap(marked, key) if self.role == "marked" else marked
        with stages.timed("evaluate"):
            embedding = embed_meta.get("embedding")
            def evaluate_deployed() -> dict:
                return dataclasses.asdict(self.evaluate(deployed, key))

            evaluation = (self.evaluated_once(evaluations["marked"], evaluate_deployed) if "marked" in evaluations
                          else evaluate_deployed())
            r.marked = MarkedEvaluation(**evaluation, cached=cached,
                                        embed_time_s=embed_meta.get("embed_time_s"),
                                        embedding=Embedding(**embedding) if embedding else None)
            if self.role == "null" and r.marked.wm_acc is not None:
                r.null = self.null_scores(source, marked, key, r.marked.wm_acc)
        victim = deployed
        if self.extracts_first():  # timed apart: the attack's time excludes it, as in the SoK (Fig. 3)
            with stages.timed("extract"):
                victim, r.attack.extracted = self.extract_model(deployed, key)
        with stages.timed("attack"):
            ctx = self.attack_context(self.attack_trainer)
            surrogate = self.attack(copy.deepcopy(victim), ctx)
            r.attack_usage = AttackUsage(**ctx.usage)
            r.attack.data = AttackData(**ctx.record())
            r.attack.result = ctx.result
        with stages.timed("evaluate"):
            r.surrogate = self.evaluate(surrogate, key)
        r.embedding_loss = r.source.test_acc - r.marked.test_acc
        r.stealing_loss = r.marked.test_acc - r.surrogate.test_acc
        r.attack_time_ratio = r.timing_s.attack / max(r.source.train_time_s, 1e-9)


def execute(cfg: DictConfig) -> dict:
    """Run every stage of the run `cfg` and return its JSON; whatever fails is recorded (status
    "failed", the error and the stage), the caller decides the exit status."""
    record = new_record(cfg)
    stages = Stages(record)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        scheme, attack = build(cfg.scheme), build(cfg.attack)
        with stages.timed("data"):
            run = Run(cfg, load_data(cfg), scheme, attack)
            record.num_classes = run.data.num_classes
            record.attack.category = attack.category
            record.attack.params = attack.recorded_params(record.attack.params)
            record.scheme.bits, record.scheme.match_rate = scheme.bits, scheme.match_rate
            record.scheme.active = scheme.active
        run.execute(stages)
        record.status = "ok"
    except Exception as e:  # recorded in the JSON
        record.status, record.failed_stage = "failed", stages.current
        record.error = f"{type(e).__name__}: {str(e).strip()}"
        record.traceback = traceback.format_exc(limit=8)
    record.timing_s.total = round(time.perf_counter() - start, 3)
    record.cpu_s.total = round(time.process_time() - cpu_start, 3)
    peak = peak_memory()
    record.memory.peak_rss_mb, record.memory.cuda_max_allocated_mb = peak.peak_rss_mb, peak.cuda_max_allocated_mb
    record.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return to_json(record)


def completed_result(path: Path) -> dict | None:
    """The result at `path` if it is a finished, valid run JSON (for resuming sweeps)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("status") == "ok" else None


def run_lock(path: Path):
    """Hold `<runs>/.locks/<run name>.lock`: a second process that starts the same run waits here
    for the first one, then reuses its JSON (`wrt.store.file_lock`: no link is followed)."""
    def say_waiting():
        print(f"wrt-run: waiting for another process computing {path.stem}", file=sys.stderr, flush=True)
    return file_lock(path.parent / ".locks" / f"{path.stem}.lock", on_wait=say_waiting)


def run_or_reuse(cfg: DictConfig) -> tuple[dict, Path, bool]:
    """(result, path, reused): reuse the run's finished JSON unless `force`, else execute the run
    and write its JSON. Concurrent processes with the same run name compute it once."""
    path = run_path(cfg)
    if not cfg.force and (previous := completed_result(path)) is not None:
        return previous, path, True
    with run_lock(path):
        if not cfg.force and (previous := completed_result(path)) is not None:  # finished meanwhile
            return previous, path, True
        result = execute(cfg)
        atomic_write_json(path, result)
    return result, path, False


def run(cfg: DictConfig) -> tuple[dict, Path]:
    """Execute one run (or reuse its finished JSON unless `force`) and write its JSON."""
    result, path, _ = run_or_reuse(cfg)
    return result, path
