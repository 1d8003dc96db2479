"""The run record: what one run writes to its JSON file (docs/run_json.md), as dataclasses.

The pipeline fills a `RunRecord` stage by stage and writes `to_json(record)`; the analyzer's loader
derives its checks from the same classes (`wrt.analysis.load.SCHEMA`). A field's annotation is its
type in a finished ("ok") run; its metadata (`entry`) says whether an ok run must have it and what
range its values lie in. A field is None until the stage that fills it has run; fields declared
`omitted` leave the JSON when None (e.g. `surrogate.wm_error`, set only when the key no longer fits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCHEMA_VERSION = 1
CATEGORIES = ("none", "input_preprocessing", "model_modification", "model_extraction", "combined", "obfuscation",
              "ambiguity")
SEED_LIMIT = 2**63
# accuracies and key scores are float32 measurements: one may lie this far from the fraction it stands for
# (DeepMarks' cosine of 1 + 2⁻²³; a loss of 250 of 5,000 test images reads 0.050000012), far below one image
FLOAT32_SLACK = 1e-6


def entry(default=None, *, factory=None, required: bool = False, omitted: bool = False, low=None, high=None,
          low_open: bool = False, high_open: bool = False, choices: tuple | None = None, form: str | None = None,
          what: str | None = None):
    """A record field. `required`: an ok run must have it; `omitted`: left out of the JSON when None;
    `low`/`high` (open or closed): the range of a number, `what` the number's meaning (`a fraction`);
    `choices`: the allowed strings; `form`: a named format the loader checks (`name`: a config name,
    `file_name`, `params`: a size-limited object)."""
    metadata = {"required": required, "omitted": omitted, "low": low, "high": high, "low_open": low_open,
                "high_open": high_open, "choices": choices, "form": form, "what": what}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


FRACTION = {"low": 0.0, "high": 1.0, "what": "a fraction"}  # accuracies


@dataclass
class SchemeRecord:
    name: str = entry(required=True, form="name")
    params: dict = entry(factory=dict, required=True, form="params")  # the config's, without `_target_`
    ablated: list[str] | None = entry()  # the parameters the paper ablates over
    bits: bool = entry(required=True)  # bit-string key
    key_size: int | None = entry(required=True, low=1)
    key_meta: dict | None = entry()  # what key generation recorded
    active: bool | None = entry()  # answers through its own wrapper (`Scheme.active`)
    match_rate: bool | None = entry()  # wm acc counts matching key entries (binomial bound); false: a score


@dataclass
class AttackData:
    """The attacker's data budget (`attacker_data`) and how many images the attack drew under it."""
    fraction: float = entry(low=0.0, high=1.0, low_open=True, what="a fraction")
    count: int | None = entry(low=1)
    labels: str = entry(form="name")
    domain: str = entry(form="name")
    images: int | None = entry(low=0)


@dataclass
class Extracted:
    """The model an attack on an active scheme ran on: extracted from the deployed wrapper first
    (`wrt.pipeline.EXTRACT_FIRST`), by `attack` with `params`; its accuracies before the attack, the queries
    it cost and how long it took when it was made (`cached`: taken from the store)."""
    attack: str = entry(form="name")
    params: dict = entry(factory=dict, form="params")
    test_acc: float = entry(**FRACTION)
    wm_acc: float | None = entry(**FRACTION)
    queries: int = entry(low=0)
    time_s: float = entry(low=0.0)
    cached: bool | None = entry()


@dataclass
class AttackRecord:
    name: str = entry(required=True, form="name")
    category: str = entry(required=True, choices=CATEGORIES)
    params: dict = entry(factory=dict, required=True, form="params")  # `Attack.recorded_params`
    ablated: list[str] | None = entry()
    data: AttackData | None = entry()
    result: dict | None = entry()  # what the attack reported (`AttackContext.report`): JSON values
    extracted: Extracted | None = entry(omitted=True)  # the attack ran on a model extracted first (active schemes)
    searched: bool | None = entry(omitted=True)  # a trial of an adaptive attacker's search (`study`), no grid run
    study: str | None = entry(omitted=True, form="name")  # the search's name (experiment=best_response)


@dataclass
class Evaluation:
    test_acc: float = entry(required=True, **FRACTION)
    wm_acc: float = entry(required=True, **FRACTION)
    wm_error: str | None = entry(omitted=True)  # why the key no longer fits the model (then wm_acc is 0)


@dataclass
class Embedding:
    """How the embedding ended (`wrt.schemes.base.embedding_record`): its stopping rule fired
    (`early_stopping`), its goal was reached (`target`) or it ran its cap of `max_epochs` (`cap`)."""
    stopped: str = entry(choices=("early_stopping", "target", "cap"))
    epochs: float = entry(low=0.0)
    steps: int = entry(low=0)
    max_epochs: float = entry(low=0.0, low_open=True)


@dataclass
class MarkedEvaluation(Evaluation):
    cached: bool | None = entry()
    embed_time_s: float | None = entry(low=0.0)
    embedding: Embedding | None = entry()  # null when nothing was trained (role null, DAWN, none)


@dataclass
class NullKeys:
    """A null run's key draws (SoK §VII-A, Appendix XV): the watermark accuracy of each of `keys` keys on
    the null model, the run's own key first; the seconds all further draws took to make and to measure."""
    keys: int = entry(low=1)
    wm_accs: list[float] = entry(factory=list, **FRACTION)
    keygen_time_s: float | None = entry(low=0.0)
    extract_time_s: float | None = entry(low=0.0)


@dataclass
class SourceRecord:
    test_acc: float = entry(required=True, **FRACTION)
    cached: bool | None = entry()
    train_time_s: float | None = entry(low=0.0, low_open=True)


@dataclass
class AttackUsage:
    """The data the attacker used (`AttackContext.count`)."""
    queries: int = entry(low=0)
    labeled_samples: int = entry(low=0)
    unlabeled_samples: int = entry(low=0)
    transfer_samples: int | None = entry(omitted=True, low=0)


@dataclass
class Timing:
    """Seconds per stage, in the order the stages run (evaluate: the marked and the surrogate model): wall
    seconds in `timing_s`, the process's CPU seconds in `cpu_s`."""
    data: float | None = entry(low=0.0)
    source: float | None = entry(low=0.0)
    keygen: float | None = entry(low=0.0)
    embed: float | None = entry(low=0.0)
    evaluate: float | None = entry(low=0.0)
    extract: float | None = entry(omitted=True, low=0.0)  # extracting a model from an active scheme's wrapper
    attack: float | None = entry(low=0.0)
    total: float | None = entry(low=0.0)

    def add(self, stage: str, seconds: float) -> None:
        setattr(self, stage, round((getattr(self, stage) or 0) + seconds, 3))


@dataclass
class PeakMemory:
    peak_rss_mb: float | None = entry(low=0.0)
    cuda_max_allocated_mb: float | None = entry(low=0.0)


@dataclass
class Memory:
    stages: dict = entry(factory=dict)  # stage -> PeakMemory at its end
    peak_rss_mb: float | None = entry(low=0.0)
    cuda_max_allocated_mb: float | None = entry(low=0.0)


@dataclass
class Versions:
    wrt: str | None = entry()
    torch: str | None = entry()
    torchvision: str | None = entry()
    python: str | None = entry()


@dataclass
class RunRecord:
    schema_version: int = entry(SCHEMA_VERSION, required=True)
    status: str = entry("running", required=True, choices=("running", "ok", "failed"))
    error: str | None = entry()
    failed_stage: str | None = entry()
    run_name: str = entry(required=True, form="file_name")
    dataset: str = entry(required=True, form="name")
    model: str = entry(required=True, form="name")
    budget: str = entry(required=True, form="name")
    seed: int = entry(required=True, low=0, high=SEED_LIMIT, high_open=True)
    role: str = entry(required=True, choices=("marked", "null"))
    num_classes: int | None = entry(low=2)
    scheme: SchemeRecord = entry(factory=SchemeRecord, required=True)
    attack: AttackRecord = entry(factory=AttackRecord, required=True)
    source: SourceRecord = entry(required=True)
    marked: MarkedEvaluation = entry(required=True)
    surrogate: Evaluation = entry(required=True)
    null: NullKeys | None = entry(omitted=True)  # role=null only
    embedding_loss: float = entry(required=True, low=-1.0, high=1.0, what="a difference of accuracies")
    stealing_loss: float = entry(required=True, low=-1.0, high=1.0, what="a difference of accuracies")
    attack_usage: AttackUsage | None = entry()
    timing_s: Timing = entry(factory=Timing)
    cpu_s: Timing | None = entry(omitted=True)  # the process's CPU seconds per stage, all its threads together
    attack_time_ratio: float | None = entry(required=True, low=0.0)
    memory: Memory = entry(factory=Memory)
    device: str | None = entry()
    precision: str | None = entry()
    cpu_threads: int | None = entry(low=1)
    cpu: str | None = entry()
    versions: Versions | None = entry()
    config: dict | None = entry()  # the full resolved Hydra config
    created: str | None = entry()
    traceback: str | None = entry(omitted=True)  # of a failed run


RECORDS = (RunRecord, SchemeRecord, AttackRecord, AttackData, Extracted, Evaluation, MarkedEvaluation, Embedding, NullKeys,
           SourceRecord, AttackUsage, Timing, PeakMemory, Memory, Versions)
OMITTED = {f.name for cls in RECORDS for f in dataclasses.fields(cls) if f.metadata["omitted"]}


def _without_omitted(pairs: list[tuple[str, object]]) -> dict:
    return {name: value for name, value in pairs if not (value is None and name in OMITTED)}


def to_json(record: RunRecord) -> dict:
    """The run JSON: `dataclasses.asdict`, without the `omitted` fields that are None."""
    return dataclasses.asdict(record, dict_factory=_without_omitted)
