"""``invbench analyze`` and ``invbench serve``: a run's targets outside the run.

:func:`fisher_for_cell` finds one (defense, attack) cell of a run spec — its target in the
run's cache (trained and cached if it is not there yet, exactly as ``invbench run`` would) and
its reconstructions in the run's store — or takes a user's model and reconstructions from
safetensors files, and returns the per-layer Fisher information of
:mod:`invbench.analysis.fisher`. Every file and choice is checked by :func:`check_fisher_inputs`
before any data is loaded or any model trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from invbench.analysis.fisher import FisherResult, fisher_analysis
from invbench.bench.runner import RunContext, cell_spec, method_label
from invbench.bench.store import Store, spec_hash
from invbench.cache import Cache
from invbench.config import RunSpec, build_method, check_device
from invbench.data import load_protocol
from invbench.data.protocol import Protocol
from invbench.errors import ConfigError, DataError
from invbench.metrics.evaluator import derive_seed
from invbench.models.stochastic import reseed
from invbench.progress import log

#: file formats the Fisher plot can be written as
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class FisherReport:
    """What :func:`fisher_for_cell` measured and on what."""

    result: FisherResult
    target: str
    attack: str
    reconstructions: Path
    target_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the target, attack, files and the per-layer table."""
        return {
            "target": self.target,
            "attack": self.attack,
            "reconstructions": str(self.reconstructions),
            "target_accuracy": self.target_accuracy,
            **self.result.to_dict(),
        }


def check_fisher_inputs(
    spec: RunSpec,
    *,
    model: Path | None,
    arch: str | None,
    reconstructions: Path | None,
    plot: Path | None,
    samples: int,
) -> None:
    """Validate the choices of ``invbench analyze fisher`` before any work (one-line errors)."""
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1 (private images per class), got {samples}")
    check_target_choice(spec, model=model, arch=arch, what="the target to analyse")
    if reconstructions is not None and not reconstructions.is_file():
        raise ConfigError(f"--reconstructions '{reconstructions}' is not a file")
    if model is not None and reconstructions is None:
        raise ConfigError("--model needs --reconstructions FILE: the store has reconstructions "
                          "only for the run's own targets")
    if reconstructions is None and len(spec.attacks) != 1:
        raise ConfigError(
            f"give exactly one --attack (whose stored reconstructions to use); the spec lists "
            f"{len(spec.attacks)}: {', '.join(m.label for m in spec.attacks)}"
        )
    if plot is not None:
        if plot.suffix.lower() not in PLOT_SUFFIXES:
            raise ConfigError(f"--plot '{plot}' needs a suffix: {', '.join(PLOT_SUFFIXES)}")
        if not plot.parent.is_dir():
            raise ConfigError(f"--plot '{plot}': folder '{plot.parent}' does not exist")
    if reconstructions is None:
        from invbench.attacks.base import UpdateAttack

        if isinstance(build_method("attack", spec.attacks[0]), UpdateAttack):
            raise ConfigError(
                f"--attack '{spec.attacks[0].label}' reconstructs a model's update samples, "
                "not its classes: the inversion task's Fisher information needs a class-level "
                "attack's reconstructions"
            )
    check_device(spec.device)


def check_target_choice(spec: RunSpec, *, model: Path | None, arch: str | None,
                        what: str) -> None:
    """One target: the spec's one ``--defense``, or ``--model`` with ``--arch`` (one line)."""
    if (model is None) != (arch is None):
        raise ConfigError("--model and --arch go together: the safetensors weights of an "
                          "invbench classifier and its architecture (e.g. --arch cnn-m)")
    if model is not None and not model.is_file():
        raise ConfigError(f"--model '{model}' is not a file")
    if model is None and len(spec.defenses) != 1:
        raise ConfigError(
            f"give exactly one --defense ({what}); the spec lists "
            f"{len(spec.defenses)}: {', '.join(m.label for m in spec.defenses)}"
        )
    if model is None:
        build_method("defense", spec.defenses[0])


def _load_safetensors(path: Path, flag: str) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{flag} '{path}' is not a readable safetensors file: "
                        f"{' '.join(str(exc).split())}") from None


def load_reconstructions(path: Path, protocol: Protocol) -> tuple[Tensor, Tensor]:
    """``images`` (N, C, H, W) in [0, 1] and ``labels`` (N,) from a reconstructions file.

    The format of the run's ``*.safetensors`` artifacts; other keys are ignored.
    """
    tensors = _load_safetensors(path, "--reconstructions")
    missing = [k for k in ("images", "labels") if k not in tensors]
    if missing:
        raise DataError(f"--reconstructions '{path}' has no {' or '.join(missing)} tensor "
                        "(expected 'images' (N, C, H, W) in [0, 1] and 'labels' (N,))")
    x, y = tensors["images"].float(), tensors["labels"]
    if tuple(x.shape[1:]) != tuple(protocol.image_shape):
        raise DataError(f"--reconstructions '{path}' holds {tuple(x.shape[1:])} images; the "
                        f"protocol's are {tuple(protocol.image_shape)}")
    if y.is_floating_point():
        raise DataError(f"--reconstructions '{path}': labels must be integers, got {y.dtype}")
    return x, y.long()


def load_user_model(path: Path, arch: str, protocol: Protocol) -> nn.Module:
    """An invbench classifier ``arch`` for the protocol, with the weights in ``path``.

    Accepts a plain state dict or a run cache entry (keys prefixed ``model.``).
    """
    from invbench.models import make_classifier

    model = make_classifier(
        arch, image_shape=protocol.image_shape, num_classes=protocol.num_classes
    )
    state = _load_safetensors(path, "--model")
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    extra = sorted(set(state) - set(wanted))
    if missing or extra:
        raise DataError(
            f"--model '{path}' does not fit arch '{arch}' with {protocol.num_classes} classes "
            f"and images {tuple(protocol.image_shape)}: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    for k, v in wanted.items():
        if state[k].shape != v.shape:
            raise DataError(
                f"--model '{path}': {k} is {tuple(state[k].shape)}, arch '{arch}' expects "
                f"{tuple(v.shape)}"
            )
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in wanted.items()})
    return model.eval()


def private_sample(protocol: Protocol, per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Up to ``per_class`` private training images of every class, drawn with ``seed``."""
    train = protocol.private_train
    y = train.y.cpu().numpy()
    rng = np.random.default_rng(derive_seed(seed, "fisher-private"))
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class]
             for c in range(protocol.num_classes)]
    idx = torch.from_numpy(np.concatenate(picks)).long()
    return train.x[idx].float(), train.y[idx].long()


def _stored_reconstructions(ctx: RunContext, defense: Any, attack: Any) -> Path:
    stored = ctx.store.find(spec_hash(cell_spec(ctx, defense, attack)))
    cell = f"{method_label(defense)} x {method_label(attack)}"
    if stored is None:
        raise ConfigError(
            f"no finished cell {cell} in '{ctx.spec.out}': run `invbench run` with the same "
            "spec first, or give --reconstructions FILE"
        )
    path = Path((stored.get("artifacts") or {}).get("reconstructions", ""))
    if not path.is_file():  # the store keeps the path the run wrote; the folder may have moved
        path = ctx.spec.out / ctx.spec.dataset / path.name
    if not path.is_file():
        raise DataError(f"the reconstructions of {cell} are gone from '{path.parent}'; "
                        "rerun the cell (delete its row) or give --reconstructions FILE")
    return path


def spec_protocol(spec: RunSpec) -> Protocol:
    """The protocol a run spec describes (dataset, classes, split, seed)."""
    return load_protocol(
        spec.dataset,
        data_dir=spec.data_dir,
        resolution=spec.resolution,
        private_classes=spec.protocol.private_classes,
        public_classes=spec.protocol.public_classes,
        test_fraction=spec.protocol.test_fraction,
        max_per_class=spec.protocol.max_per_class,
        seed=spec.seed,
    )


def spec_target(
    spec: RunSpec, protocol: Protocol, *, quiet: bool = False
) -> tuple[nn.Module, str, str]:
    """The target of the spec's one defense, from the run's cache under ``spec.out``.

    Trained and cached first if it is not there (exactly as ``invbench run`` would, and
    logged). Returns ``(model in eval mode on the spec's device, label, cache key)``; a
    stochastic target is reseeded with the spec's seed.
    """
    device = check_device(spec.device)
    defense = build_method("defense", spec.defenses[0])
    cache = Cache(spec.out / "cache")
    model = defense.train(  # type: ignore[attr-defined]
        protocol, config=spec.train, seed=spec.seed, device=device, quiet=quiet, cache=cache,
    )
    label = method_label(defense)  # type: ignore[arg-type]
    if not defense.train_hit_:  # type: ignore[attr-defined]
        log(f"target [bold]{label}[/] was not in the cache: trained and cached", quiet=quiet)
    key = cache.key(defense.cache_parts(protocol, spec.train, spec.seed))  # type: ignore[attr-defined]
    model = model.to(device).eval()
    reseed(model, spec.seed)
    return model, label, key


def resolve_target(
    spec: RunSpec, protocol: Protocol, *, model_file: Path | None, arch: str | None,
    quiet: bool = False,
) -> tuple[nn.Module, str, str]:
    """``(model, label, identity)``: a user's weights built as ``arch``, else the spec's target
    from the run's cache (:func:`spec_target`). On the spec's device, in eval mode."""
    if model_file is None:
        return spec_target(spec, protocol, quiet=quiet)
    from invbench.access import model_fingerprint

    assert arch is not None
    model = load_user_model(model_file, arch, protocol).to(check_device(spec.device))
    return model, f"{model_file.name} ({arch})", model_fingerprint(model)


def fisher_for_cell(
    spec: RunSpec,
    *,
    model_file: Path | None = None,
    arch: str | None = None,
    reconstructions: Path | None = None,
    samples: int = 100,
    quiet: bool = False,
) -> FisherReport:
    """Per-layer Fisher information of one target: classification vs its inversion.

    The target is the spec's one defense (from the run's cache under ``spec.out``) or
    ``model_file`` built as ``arch``; the inversion task is the spec's one attack's stored
    reconstructions of that target or the file ``reconstructions``; the classification task
    is ``samples`` private training images per class. Call :func:`check_fisher_inputs` first.
    """
    from invbench.metrics import target_accuracy

    device = check_device(spec.device)
    protocol = spec_protocol(spec)
    accuracy: float | None = None
    attack_label = "-"
    rec_path = reconstructions
    if rec_path is None:
        store_path = spec.out / "invbench.sqlite"
        if not store_path.is_file():
            raise ConfigError(f"no store at '{store_path}': run `invbench run` first, or "
                              "give --reconstructions FILE")
        defense = build_method("defense", spec.defenses[0])
        attack = build_method("attack", spec.attacks[0])
        store = Store(store_path)
        try:
            ctx = RunContext(spec=spec, protocol=protocol, device=device,
                             cache=Cache(spec.out / "cache"), store=store, quiet=quiet)
            rec_path = _stored_reconstructions(ctx, defense, attack)
        finally:
            store.close()
        attack_label = method_label(attack)  # type: ignore[arg-type]
    model, target, _ = resolve_target(spec, protocol, model_file=model_file, arch=arch,
                                      quiet=quiet)
    if model_file is None:
        accuracy = target_accuracy(model, protocol.private_test, device=device)
    rec_x, rec_y = load_reconstructions(rec_path, protocol)
    priv_x, priv_y = private_sample(protocol, samples, spec.seed)
    result = fisher_analysis(
        model, priv_x, priv_y, rec_x, rec_y, device=device, seed=spec.seed, quiet=quiet
    )
    return FisherReport(result, target, attack_label, rec_path, accuracy)
