"""Run specs: typed, validated, loaded from flags or YAML. The only place user input is checked.

A spec is validated completely — dataset name, data folder, every defense and attack name and
each of their parameters, device — before any work starts or anything is written. Errors are
:class:`~invbench.errors.ConfigError` with one line naming the field, the bad value and what
is allowed.

Example YAML (every key optional; ``examples/`` has commented specs)::

    dataset: digits          # see `invbench list`
    seed: 0
    per_label: 5             # reconstructions per attacked class
    protocol: {max_per_class: 1000}
    defenses:                # each: a name, or {name: params}
      - none
      - mid: {beta: 0.01}
    attacks:
      - mi-face: {steps: 300}
      - gmi
    train: {epochs: 30}      # how targets are trained
    evaluator: {epochs: 40}  # the independent evaluation models
    references: {per_class: 100}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from invbench.defenses.base import TrainConfig
from invbench.errors import ConfigError
from invbench.params import Configurable
from invbench.registry import ATTACKS, DATASETS, DEFENSES, OUTPUTS

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class MethodSpec(BaseModel):
    """A defense or attack by name, with parameter overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """``name`` or ``name:key=value,...`` (the CLI syntax)."""
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}:{inner}"


class ProtocolSpec(BaseModel):
    """Which classes are private (the target's) and which public (the attacker's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    private_classes: list[StrictInt] | None = Field(
        None, description="default: first half of classes"
    )
    public_classes: list[StrictInt] | None = Field(None, description="default: the other classes")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="private held-out fraction")
    max_per_class: StrictInt | None = Field(
        None, ge=2, description="cap on images per class, drawn with the seed (default: all)"
    )


class RobustSpec(BaseModel):
    """The adversarially trained evaluator (its features judge FID, PRDC and ``success``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field("dense", description="evaluator family of the robust evaluator")
    epochs: StrictInt = Field(10, ge=1, description="adversarial training epochs")
    method: Literal["pgd", "fgsm-rs"] | None = Field(
        None, description="adversarial training (default: per resolution, see adversarial.py)"
    )
    eps: float | None = Field(
        None, gt=0, le=1, description="L-inf radius (default 0.1 up to 32 px)"
    )
    steps: StrictInt | None = Field(None, ge=1, description="PGD steps (default per resolution)")

    @model_validator(mode="after")
    def _fgsm_is_one_step(self) -> RobustSpec:
        if self.method == "fgsm-rs" and self.steps not in (None, 1):
            raise ValueError(f"robust.method 'fgsm-rs' takes one step, got steps={self.steps}")
        return self


class EvaluatorSpec(BaseModel):
    """The independent evaluation models: standard, other families, robust."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str | None = Field(None, description="standard evaluator (default: resnet)")
    epochs: StrictInt = Field(40, ge=1, description="training epochs of each standard evaluator")
    others: list[str] = Field(
        default_factory=lambda: ["vit", "mlp"],
        description="more evaluator families for the ensemble; the first is feat_dist's extractor",
    )
    robust: RobustSpec = Field(default_factory=RobustSpec)
    tta: StrictBool = Field(True, description="ensemble votes average small shifts")
    quantile: float = Field(
        0.95, gt=0, lt=1, description="success threshold: this quantile of held-out distances"
    )

    def families(self, image_shape: tuple[int, int, int]) -> list[str]:
        """The ensemble's architectures in order: standard, others, robust."""
        from invbench.models import evaluator_arch

        return [self.arch or evaluator_arch(image_shape), *self.others, self.robust.arch]


class AdversarialRefSpec(BaseModel):
    """The adversarial reference: public images pushed toward each class on the target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: float = Field(0.1, gt=0, le=1, description="L-inf radius")
    steps: StrictInt = Field(100, ge=1, description="PGD steps")
    step_size: float = Field(0.01, gt=0, description="PGD step")
    eot: StrictInt = Field(
        8, ge=1, description="gradient samples averaged against a stochastic target (EOT)"
    )


class ReferenceSpec(BaseModel):
    """The three references every result is reported next to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_class: StrictInt = Field(100, ge=1, le=10000, description="images per attacked class")
    adversarial: AdversarialRefSpec = Field(default_factory=AdversarialRefSpec)


class RunSpec(BaseModel):
    """Everything that determines a benchmark run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "digits"
    data_dir: Path | None = None
    resolution: StrictInt | None = Field(None, ge=4, le=512)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluator: EvaluatorSpec = Field(default_factory=EvaluatorSpec)
    defenses: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(name="none"), MethodSpec(name="mid")]
    )
    attacks: list[MethodSpec] = Field(
        default_factory=lambda: [MethodSpec(name="mi-face"), MethodSpec(name="gmi")]
    )
    references: ReferenceSpec = Field(default_factory=ReferenceSpec)
    labels: list[StrictInt] | None = Field(
        None, description="target labels to attack (default: all)"
    )
    per_label: StrictInt = Field(5, ge=1, le=1000)
    budget: StrictInt | None = Field(None, ge=1, description="query budget per attack run")
    output: MethodSpec | None = Field(
        None,
        description="output processing of black-box/label-only answers (top-k, round, noise)",
    )
    target_url: str | None = Field(
        None,
        description="attack this endpoint on this machine (invbench serve) instead of "
        "training targets; black-box and label-only attacks only",
    )
    seed: StrictInt = Field(0, ge=0, le=2**63 - 1)
    device: str = "cpu"
    out: Path = Path("runs")

    @field_validator("defenses", "attacks", mode="before")
    @classmethod
    def _methods(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        return [_coerce_method(item) for item in v]

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, v: Any) -> Any:
        return None if v is None else _coerce_method(v)


def _coerce_method(item: Any) -> Any:
    """A list entry of ``defenses``/``attacks``: ``name``, ``{name: {params}}`` or a MethodSpec."""
    if isinstance(item, str):
        return parse_method(item)
    if isinstance(item, dict) and len(item) == 1 and "name" not in item:
        ((name, params),) = item.items()
        if params is not None and not isinstance(params, dict):
            raise ValueError(
                f"'{name}: {params!r}' is not a method; write '{name}' or "
                f"'{name}: {{key: value}}' (e.g. 'gmi: {{iterations: 300}}')"
            )
        return MethodSpec(name=str(name), params=dict(params or {}))
    if isinstance(item, (MethodSpec, dict)):
        return item
    raise ValueError(
        f"{item!r} is not a method; write a name or 'name: {{key: value}}'"
    )


def _scalar(text: str) -> Any:
    """A CLI parameter value: YAML scalar rules (0.01 -> float, 5 -> int, true -> bool)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def parse_method(text: str) -> MethodSpec:
    """Parse ``name`` or ``name:key=value,key=value`` (the CLI's --defense/--attack syntax)."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if not _NAME.match(name):
        raise ConfigError(f"invalid method '{text}'; expected NAME or NAME:key=value,key=value")
    params: dict[str, Any] = {}
    if rest.strip():
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ConfigError(
                    f"invalid parameter '{part}' in '{text}'; "
                    "expected key=value (e.g. mid:beta=0.01)"
                )
            if key in params:
                raise ConfigError(f"parameter '{key}' given twice in '{text}'")
            params[key] = _scalar(value.strip())
    return MethodSpec(name=name, params=params)


def _pydantic_message(exc: ValidationError, *, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = err.get("msg", "invalid")
    got = err.get("input")
    if err.get("type") == "extra_forbidden":
        return f"{where}: unknown field '{loc}'"
    msg = msg.lower().removeprefix("value error, ")
    if err.get("type") == "value_error":
        return f"{where}: field '{loc}': {msg}"
    return f"{where}: field '{loc}': {msg}; got {got!r}"


def check_device(device: str) -> torch.device:
    """Validate a device string: 'cpu', 'cuda', 'cuda:N' or 'mps', and that it is available."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"device '{device}' is not valid; use cpu, cuda, cuda:N or mps")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}': CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device '{device}': only {torch.cuda.device_count()} CUDA device(s) present"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{device}': MPS is not available on this machine")
    return dev


def build_method(kind: str, spec: MethodSpec) -> Configurable:
    """Instantiate a registered defense or attack from its spec (validates its parameters)."""
    registry = {"defense": DEFENSES, "attack": ATTACKS, "output": OUTPUTS}[kind]
    cls = registry.get(spec.name)
    return cls(**spec.params)


def validate_spec(spec: RunSpec) -> RunSpec:
    """Check everything that the schema alone cannot (names, folders, devices, parameters)."""
    if spec.dataset not in DATASETS:
        DATASETS.get(spec.dataset)  # raises the one-line 'unknown dataset' error
    if spec.data_dir is not None:
        if not spec.data_dir.exists():
            raise ConfigError(f"data_dir '{spec.data_dir}' does not exist")
        if not spec.data_dir.is_dir():
            raise ConfigError(f"data_dir '{spec.data_dir}' is not a directory")
    if not spec.defenses:
        raise ConfigError("defenses: give at least one defense (use 'none' for no defense)")
    if not spec.attacks:
        raise ConfigError("attacks: give at least one attack")
    for kind, methods in (("defense", spec.defenses), ("attack", spec.attacks)):
        seen: dict[str, str] = {}
        for m in methods:
            built = build_method(kind, m)
            resolved = repr(built)  # name and every parameter, defaults filled in
            if resolved in seen:
                raise ConfigError(
                    f"{kind} '{m.label}' is listed twice (same as '{seen[resolved]}')"
                )
            seen[resolved] = m.label
    if spec.output is not None:
        build_method("output", spec.output)  # a bad name or parameter is one line here
        white = [m.label for m in spec.attacks if ATTACKS.get(m.name).access == "white-box"]
        if white:
            raise ConfigError(
                f"output: '{spec.output.label}' processes only black-box and label-only "
                f"answers; attack '{white[0]}' needs white-box access, which reads the logits "
                "directly (run it without --output)"
            )
    if spec.target_url is not None:
        _check_endpoint_spec(spec)
    if spec.labels is not None:
        if not spec.labels or min(spec.labels) < 0:
            raise ConfigError("labels: give non-negative target labels (e.g. 0 1 2)")
        dup = sorted({v for v in spec.labels if spec.labels.count(v) > 1})
        if dup:
            raise ConfigError(f"labels: {dup} listed more than once; give each label once")
    _check_evaluators(spec.evaluator)
    check_device(spec.device)
    if spec.out.exists() and not spec.out.is_dir():
        raise ConfigError(f"out '{spec.out}' exists and is not a directory")
    return spec


def _check_endpoint_spec(spec: RunSpec) -> None:
    """A run against an endpoint: loopback URL, query-only attacks, nothing to train."""
    from invbench.serving.channels import check_loopback_url

    check_loopback_url(spec.target_url or "")
    white = [m.label for m in spec.attacks if ATTACKS.get(m.name).access == "white-box"]
    if white:
        raise ConfigError(
            f"target_url: attack '{white[0]}' needs white-box access; an endpoint answers "
            "queries only (use black-box or label-only attacks)"
        )
    for field, why in (
        ("defenses", "the endpoint is the target; serve a defended target with "
                     "`invbench serve --defense ...`"),
        ("output", "the endpoint applies its own output processing (`invbench serve --output`)"),
        ("budget", "the endpoint enforces its own budget (`invbench serve --budget`)"),
    ):
        if field in spec.model_fields_set and getattr(spec, field) is not None:
            raise ConfigError(f"target_url: drop '{field}': {why}")


def _check_evaluators(ev: EvaluatorSpec) -> None:
    """Evaluator families exist, are not target families, and differ from each other."""
    from invbench.models import EVALUATOR_ARCHS, TARGET_ARCHS

    names = [("evaluator.arch", ev.arch)] if ev.arch is not None else []
    names += [(f"evaluator.others[{i}]", a) for i, a in enumerate(ev.others)]
    names.append(("evaluator.robust.arch", ev.robust.arch))
    for field, arch in names:
        if arch not in EVALUATOR_ARCHS:
            why = "is a target family" if arch in TARGET_ARCHS else "is not an evaluator family"
            raise ConfigError(
                f"{field}: '{arch}' {why}; evaluators must differ from targets, choose one "
                f"of: {', '.join(EVALUATOR_ARCHS)}"
            )
    families = [ev.arch or "resnet", *ev.others, ev.robust.arch]
    dup = sorted({a for a in families if families.count(a) > 1})
    if dup:
        raise ConfigError(
            f"evaluator: family {dup} used twice (standard {families[0]!r}, others "
            f"{ev.others}, robust {ev.robust.arch!r}); the ensemble needs different families"
        )
    if len(families) < 3:
        raise ConfigError(
            f"evaluator: the ensemble has {len(families)} families {families}; it needs at "
            "least 3 (standard, one in 'others', robust)"
        )


def make_spec(**fields: Any) -> RunSpec:
    """Build and validate a :class:`RunSpec` from keyword fields (CLI flags, API calls)."""
    clean = {k: v for k, v in fields.items() if v is not None}
    try:
        spec = RunSpec(**clean)
    except ValidationError as exc:
        raise ConfigError(_pydantic_message(exc, where="spec")) from None
    return validate_spec(spec)


def load_spec(path: str | Path, **overrides: Any) -> RunSpec:
    """Load a YAML spec file; keyword ``overrides`` (not None) replace its top-level fields."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"spec file '{p}' does not exist")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"spec file '{p}' is not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"spec file '{p}' must hold a mapping of fields at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        spec = RunSpec(**raw)
    except ValidationError as exc:
        raise ConfigError(_pydantic_message(exc, where=f"spec file '{p}'")) from None
    return validate_spec(spec)
