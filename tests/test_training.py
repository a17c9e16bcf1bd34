"""Training loops: accuracy on an easy problem, seeding, adversarial training, WGAN-GP
behaviour, input validation."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from invbench.adversarial import AdversarialTraining, default_adversarial, pgd
from invbench.errors import ConfigError, DataError
from invbench.models import make_classifier, make_gan
from invbench.training import (
    default_max_shift,
    evaluate_accuracy,
    train_classifier,
    train_wgan_gp,
)


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target, dtype=torch.long)


@pytest.fixture(scope="module")
def digits_0_4(digits) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y = digits
    keep = y < 5
    x, y = x[keep], y[keep]
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    tr, te = perm[:cut], perm[cut:]
    return x[tr], y[tr], x[te], y[te]


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- classifiers


def test_cnn_s_learns_digits(digits_0_4) -> None:
    xtr, ytr, xte, yte = digits_0_4
    torch.manual_seed(0)
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    before = evaluate_accuracy(model, xte, yte)
    out = train_classifier(model, xtr, ytr, epochs=4, seed=0)
    assert out is model and not model.training
    acc = evaluate_accuracy(model, xte, yte)
    assert before < 0.5
    assert acc >= 0.95


def test_evaluator_archs_learn_digits(digits_0_4) -> None:
    xtr, ytr, xte, yte = digits_0_4
    for arch in ("resnet", "mlp"):
        torch.manual_seed(0)
        model = make_classifier(arch, image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, xtr, ytr, epochs=4, seed=0, augment=True)
        assert evaluate_accuracy(model, xte, yte) >= 0.9, arch


def test_same_seed_same_weights_different_seed_differs(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:256], digits_0_4[1][:256]

    def run(seed: int) -> dict[str, Tensor]:
        torch.manual_seed(0)
        model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, xtr, ytr, epochs=2, batch_size=32, augment=True, seed=seed)
        return _state(model)

    assert _same(run(1), run(1))
    assert not _same(run(1), run(2))


def test_global_rng_is_seeded_inside_and_restored(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:64], digits_0_4[1][:64]
    draws: list[Tensor] = []

    def noisy_loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        draws.append(torch.randn(()))  # e.g. a reparametrisation sample
        return nn.functional.cross_entropy(model(xb), yb)

    class AlwaysNoisy(nn.Module):
        """Samples from the global RNG in train *and* eval mode (like MID with samples > 0)."""

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(64, 5)

        def forward(self, x: Tensor) -> Tensor:
            return self.lin(x.flatten(1)) + 0.0 * torch.randn(x.shape[0], 5)

    torch.manual_seed(123)
    before = torch.get_rng_state()
    for _ in range(2):
        model = AlwaysNoisy()
        torch.set_rng_state(before)
        train_classifier(model, xtr, ytr, loss_fn=noisy_loss, epochs=1, batch_size=32, seed=5)
        assert torch.equal(torch.get_rng_state(), before)
    assert len(draws) == 4 and torch.equal(torch.stack(draws[:2]), torch.stack(draws[2:]))


def test_custom_loss_sees_every_image_once_per_epoch(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:100], digits_0_4[1][:100]
    seen: list[int] = []

    def loss_fn(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        assert model.training
        seen.append(xb.shape[0])
        return nn.functional.cross_entropy(model(xb), yb)

    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    train_classifier(model, xtr, ytr, loss_fn=loss_fn, epochs=3, batch_size=32, seed=0)
    assert seen == [32, 32, 32, 4] * 3


def test_augmentation_changes_training_and_shift_sizes(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:128], digits_0_4[1][:128]
    states = []
    for aug in (False, True):
        torch.manual_seed(0)
        model = make_classifier("mlp", image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, xtr, ytr, epochs=1, augment=aug, seed=0)
        states.append(_state(model))
    assert not _same(*states)
    assert [default_max_shift(h) for h in (8, 16, 28, 32, 64, 128)] == [1, 1, 2, 2, 4, 4]


def test_progress_bar_path_runs(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:64], digits_0_4[1][:64]
    model = make_classifier("mlp", image_shape=(1, 8, 8), num_classes=5)
    train_classifier(model, xtr, ytr, epochs=2, batch_size=8, quiet=False, desc="unit")
    assert not model.training


def test_evaluate_accuracy_exact_and_batched() -> None:
    class Parity(nn.Module):
        """Predicts class 1 when the first pixel > 0.5, else 0."""

        def forward(self, x: Tensor) -> Tensor:
            hot = (x[:, 0, 0, 0] > 0.5).long()
            return nn.functional.one_hot(hot, 3).float()

    x = torch.zeros(10, 1, 4, 4)
    x[:6, 0, 0, 0] = 1.0
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 2])
    model = Parity().train()
    assert evaluate_accuracy(model, x, y) == pytest.approx(0.7)
    assert evaluate_accuracy(model, x, y, batch_size=3) == pytest.approx(0.7)
    assert model.training  # mode restored


@pytest.mark.parametrize(
    ("case", "error", "needle"),
    [
        ("empty", DataError, "no images"),
        ("mismatch", DataError, "labels"),
        ("label_high", DataError, "[0, 4]"),
        ("label_negative", DataError, "[0, 4]"),
        ("float_labels", DataError, "integer"),
        ("out_of_range_pixels", DataError, "[0, 1]"),
        ("nan", DataError, "NaN"),
        ("wrong_shape", DataError, "rejects images"),
        ("epochs", ConfigError, "epochs"),
        ("batch_size", ConfigError, "batch_size"),
        ("lr", ConfigError, "lr"),
        ("weight_decay", ConfigError, "weight_decay"),
    ],
)
def test_train_classifier_bad_inputs(case: str, error: type, needle: str) -> None:
    x = torch.rand(20, 1, 8, 8)
    y = torch.randint(0, 5, (20,))
    kw: dict[str, object] = {"epochs": 1}
    if case == "empty":
        x, y = x[:0], y[:0]
    elif case == "mismatch":
        y = y[:19]
    elif case == "label_high":
        y[3] = 5
    elif case == "label_negative":
        y[3] = -1
    elif case == "float_labels":
        y = y.float()
    elif case == "out_of_range_pixels":
        x = x * 255
    elif case == "nan":
        x[0, 0, 0, 0] = float("nan")
    elif case == "wrong_shape":
        x = torch.rand(20, 3, 8, 8)
    elif case in ("epochs", "batch_size"):
        kw[case] = 0
    elif case == "lr":
        kw["lr"] = -1.0
    elif case == "weight_decay":
        kw["weight_decay"] = "0.1"
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    with pytest.raises(error) as info:
        train_classifier(model, x, y, **kw)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_evaluate_accuracy_bad_inputs() -> None:
    model = make_classifier("mlp", image_shape=(1, 8, 8), num_classes=5)
    x = torch.rand(6, 1, 8, 8)
    with pytest.raises(DataError, match="6 images but 5 labels"):
        evaluate_accuracy(model, x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 4\]"):
        evaluate_accuracy(model, x, torch.full((6,), 9))
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_accuracy(model, x, torch.zeros(6, dtype=torch.long), batch_size=0)


# --------------------------------------------------------------------------- WGAN-GP


def _critic_gap(critic: nn.Module, real: Tensor, other: Tensor) -> float:
    with torch.no_grad():
        return float(critic(real).mean() - critic(other).mean())


def test_wgan_gp_critic_learns_to_separate_real_from_fake(digits) -> None:
    x = digits[0][digits[1] >= 5]
    torch.manual_seed(0)
    gen, critic = make_gan((1, 8, 8), latent_dim=32)
    noise = torch.rand(256, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    real = x[:256]
    gap_noise_before = _critic_gap(critic, real, noise)
    losses = train_wgan_gp(gen, critic, x, steps=5, batch_size=32, seed=0)
    assert set(losses) == {"d_loss", "g_loss", "wasserstein", "gp"}
    assert all(isinstance(v, float) for v in losses.values())
    assert not gen.training and not critic.training
    gap_noise_after = _critic_gap(critic, real, noise)
    assert gap_noise_after > gap_noise_before + 0.5
    assert losses["wasserstein"] > 0  # the critic scores real above generated
    assert losses["d_loss"] < 0  # and its loss fell below the value ~0 of a blind critic
    with torch.no_grad():
        fake = gen(torch.randn(256, 32, generator=torch.Generator().manual_seed(2)))
    assert _critic_gap(critic, real, fake) > 0


def test_wgan_gp_same_seed_same_weights(digits) -> None:
    x = digits[0][:200]

    def run(seed: int) -> dict[str, Tensor]:
        torch.manual_seed(0)
        gen, critic = make_gan((1, 8, 8), latent_dim=8)
        train_wgan_gp(gen, critic, x, steps=2, batch_size=16, n_critic=2, seed=seed)
        return {**_state(gen), **{"d." + k: v for k, v in _state(critic).items()}}

    assert _same(run(0), run(0))
    assert not _same(run(0), run(1))


def test_wgan_gp_progress_bar_path_runs(digits) -> None:
    gen, critic = make_gan((1, 8, 8), latent_dim=8)
    out = train_wgan_gp(gen, critic, digits[0][:64], steps=2, batch_size=8, n_critic=1, quiet=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())


@pytest.mark.parametrize(
    ("kw", "error", "needle"),
    [
        ({"steps": 0}, ConfigError, "steps"),
        ({"n_critic": 0}, ConfigError, "n_critic"),
        ({"gp_weight": -1.0}, ConfigError, "gp_weight"),
        ({"betas": (0.5, 1.5)}, ConfigError, "betas"),
        ({"x": torch.rand(0, 1, 8, 8)}, DataError, "no images"),
        ({"x": torch.rand(10, 1, 28, 28)}, DataError, "generator makes"),
        ({"x": torch.rand(10, 1, 8, 8) + 1}, DataError, "[0, 1]"),
    ],
)
def test_wgan_gp_bad_inputs(kw: dict, error: type, needle: str) -> None:
    gen, critic = make_gan((1, 8, 8), latent_dim=8)
    args = {"steps": 1, **kw}
    x = args.pop("x", torch.rand(10, 1, 8, 8))
    with pytest.raises(error) as info:
        train_wgan_gp(gen, critic, x, **args)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_wgan_gp_needs_latent_dim() -> None:
    _, critic = make_gan((1, 8, 8))
    with pytest.raises(ConfigError, match="latent_dim"):
        train_wgan_gp(nn.Identity(), critic, torch.rand(4, 1, 8, 8), steps=1)


# --------------------------------------------------------------------------- adversarial training


class _ModeRecorder(nn.Module):
    """A linear classifier that records its mode at every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 5)
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return self.lin(x.flatten(1))


def test_adversarial_batches_are_made_in_eval_mode_within_eps(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:96], digits_0_4[1][:96]
    adv = AdversarialTraining(method="pgd", eps=0.1, steps=2, step_size=0.06)
    seen: list[Tensor] = []

    def loss_fn(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        seen.append(xb)
        return nn.functional.cross_entropy(model(xb), yb)

    model = _ModeRecorder()
    train_classifier(model, xtr, ytr, loss_fn=loss_fn, epochs=1, batch_size=32, seed=0,
                     adversarial=adv)
    # per batch: the probe of the output width, then 2 attack passes in eval, 1 update in train
    assert model.modes[1:] == [False, False, True] * 3
    assert not model.training
    # every training batch is a perturbed copy of training images: within eps, not equal
    batch = torch.cat(seen)
    dist = (batch[:, None] - xtr[None]).abs().flatten(2).amax(2)  # (96, 96) L-inf
    nearest = dist.min(1).values
    assert float(nearest.max()) <= 0.1 + 1e-6 and float(nearest.min()) > 0.05
    assert float(batch.min()) >= 0 and float(batch.max()) <= 1


def test_adversarial_training_is_seeded_and_differs_from_standard(digits_0_4) -> None:
    xtr, ytr = digits_0_4[0][:128], digits_0_4[1][:128]
    fgsm = default_adversarial((1, 8, 8), method="fgsm-rs")

    def run(seed: int, adversarial: AdversarialTraining | None) -> dict[str, Tensor]:
        torch.manual_seed(0)
        model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, xtr, ytr, epochs=1, batch_size=32, augment=True, seed=seed,
                         adversarial=adversarial)
        return _state(model)

    a = run(1, fgsm)
    assert _same(a, run(1, fgsm))
    assert not _same(a, run(2, fgsm))
    assert not _same(a, run(1, None))


def test_adversarial_training_makes_a_model_harder_to_fool(digits_0_4) -> None:
    # eps 0.2: on 8x8 digits a plain model already resists much of eps 0.1, so use a budget
    # that fools it (measured: standard 0.99 clean -> 0.10 attacked, FGSM-RS 0.99 -> 0.62)
    xtr, ytr, xte, yte = digits_0_4
    adv = default_adversarial((1, 8, 8), method="fgsm-rs", eps=0.2)
    accs = {}
    for name, setting in (("standard", None), ("adversarial", adv)):
        torch.manual_seed(0)
        model = make_classifier("mlp", image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, xtr, ytr, epochs=10, seed=0, adversarial=setting)
        attacked = pgd(model, xte, yte, eps=0.2, steps=10, step_size=0.05)
        accs[name] = (evaluate_accuracy(model, xte, yte), evaluate_accuracy(model, attacked, yte))
    assert accs["adversarial"][0] >= 0.9  # still accurate on clean images
    assert accs["adversarial"][1] >= 0.4
    assert accs["adversarial"][1] >= accs["standard"][1] + 0.3, accs


def test_adversarial_setting_must_be_the_settings_object(digits_0_4) -> None:
    model = make_classifier("mlp", image_shape=(1, 8, 8), num_classes=5)
    with pytest.raises(ConfigError, match="AdversarialTraining") as info:
        train_classifier(model, digits_0_4[0][:8], digits_0_4[1][:8], epochs=1,
                         adversarial={"method": "pgd", "eps": 0.1})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


# -- plug-in points: parameter groups, optimiser factory, batch rewriting, sampling --------


def test_params_limits_what_is_trained(digits_0_4) -> None:
    x, y, _, _ = digits_0_4
    torch.manual_seed(0)
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    body = {k: v.clone() for k, v in model.body.state_dict().items()}
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    train_classifier(model, x, y, epochs=1, params=model.head.parameters(), seed=0)
    # the body's weights did not move (its BN statistics may: it still runs in train mode)
    for k, v in model.body.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, body[k]), k
    assert any(not torch.equal(v, head[k]) for k, v in model.head.state_dict().items())
    with pytest.raises(ConfigError, match="params is empty"):
        train_classifier(model, x, y, epochs=1, params=[])


def test_optimizer_factory_and_parameter_groups(digits_0_4) -> None:
    x, y, _, _ = digits_0_4
    torch.manual_seed(0)
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    made: list[torch.optim.Optimizer] = []

    def sgd(params):
        made.append(torch.optim.SGD(params, lr=0.05, momentum=0.9))
        return made[-1]

    groups = [{"params": model.body.parameters(), "lr": 0.0},
              {"params": model.head.parameters()}]
    before = model.body[0].weight.clone()
    train_classifier(model, x, y, epochs=2, params=groups, optimizer=sgd, seed=0)
    assert len(made) == 1 and len(made[0].param_groups) == 2
    assert torch.equal(model.body[0].weight, before)  # lr 0 for the body's group
    assert evaluate_accuracy(model, x, y) > 0.5  # the head alone learns on random features
    with pytest.raises(ConfigError, match="must return a torch.optim.Optimizer"):
        train_classifier(model, x, y, epochs=1, optimizer=lambda p: None)


def test_batch_fn_rewrites_every_batch(digits_0_4) -> None:
    x, y, _, _ = digits_0_4
    torch.manual_seed(0)
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    sizes: list[int] = []

    def everything_is_class_3(xb, yb, gen):
        assert isinstance(gen, torch.Generator)
        sizes.append(xb.shape[0])
        return xb, torch.full_like(yb, 3)

    train_classifier(model, x, y, epochs=1, batch_size=64, batch_fn=everything_is_class_3,
                     seed=0)
    assert sum(sizes) == x.shape[0] - (1 if x.shape[0] % 64 == 1 else 0)
    with torch.inference_mode():
        assert bool((model(x).argmax(1) == 3).all())  # it learned the rewritten labels


def test_sampler_decides_the_batches(digits_0_4) -> None:
    x, y, _, _ = digits_0_4
    torch.manual_seed(0)
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    seen: list[Tensor] = []

    def only_class_1(n, gen):
        idx = torch.nonzero(y == 1).flatten()
        return [idx[torch.randperm(len(idx), generator=gen)][:16] for _ in range(4)]

    def loss(m, xb, yb):
        seen.append(yb)
        return nn.functional.cross_entropy(m(xb), yb)

    train_classifier(model, x, y, epochs=2, sampler=only_class_1, loss_fn=loss, seed=0)
    assert len(seen) == 8 and all(bool((b == 1).all()) and b.shape[0] == 16 for b in seen)
