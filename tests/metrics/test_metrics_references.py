"""The three references: held-out halves that never overlap, noise, and adversarial noise."""

from __future__ import annotations

import pytest
import torch

from invbench.errors import DataError
from invbench.metrics.references import (
    adversarial_reference,
    noise_reference,
    private_test_reference,
    split_holdout,
)


def test_holdout_halves_are_disjoint_cover_every_class_and_are_seeded(digits_protocol):
    p = digits_protocol
    calib, ref = split_holdout(p, seed=0)
    assert set(calib.tolist()).isdisjoint(ref.tolist())
    assert sorted(calib.tolist() + ref.tolist()) == list(range(len(p.private_test)))
    y = p.private_test.y
    for c in range(p.num_classes):
        n_c, n_cal = int((y == c).sum()), int((y[calib] == c).sum())
        assert n_cal == -(-n_c // 2)
    again, _ = split_holdout(p, seed=0)
    other, _ = split_holdout(p, seed=1)
    assert torch.equal(calib, again) and not torch.equal(calib, other)


def test_private_test_reference_uses_only_the_reference_half_without_repeats(digits_protocol):
    p = digits_protocol
    calib, ref = split_holdout(p, seed=0)
    rec = private_test_reference(p, [3, 1], per_class=1000, ref_index=ref, seed=0)
    # every image is a distinct reference-half image of its class; none from calibration
    pool = {tuple(p.private_test.x[i].flatten().tolist()): int(p.private_test.y[i]) for i in ref}
    calib_imgs = {tuple(p.private_test.x[i].flatten().tolist()) for i in calib}
    keys = [tuple(x.flatten().tolist()) for x in rec.images]
    assert len(set(keys)) == len(keys)
    assert all(pool[k] == int(lab) for k, lab in zip(keys, rec.labels, strict=True))
    assert not (set(keys) & calib_imgs - set(pool))
    n3 = int((p.private_test.y[ref] == 3).sum())
    assert rec.labels.tolist()[:n3] == [3] * n3  # label order, capped by what the class has
    small = private_test_reference(p, [0], per_class=4, ref_index=ref, seed=0)
    assert small.images.shape[0] == 4


def test_noise_reference_is_uniform_and_seeded(digits_protocol):
    a = noise_reference(digits_protocol, [0, 2], per_class=100, seed=0)
    b = noise_reference(digits_protocol, [0, 2], per_class=100, seed=0)
    assert a.images.shape == (200, 1, 8, 8) and torch.equal(a.images, b.images)
    assert a.labels.tolist() == [0] * 100 + [2] * 100
    assert abs(float(a.images.mean()) - 0.5) < 0.02


def test_adversarial_reference_fools_the_target_within_eps(digits_protocol, digits_target):
    p = digits_protocol
    rec = adversarial_reference(p, [0, 1, 2, 3, 4], digits_target, per_class=20, seed=0,
                                steps=40)
    assert rec.images.shape == (100, 1, 8, 8)
    pub = p.public.x.flatten(1)
    # the public image each one started from: its nearest public image in L-inf
    start = torch.cdist(rec.images.flatten(1), pub, p=float("inf")).argmin(dim=1)
    with torch.no_grad():
        before = digits_target(p.public.x[start]).argmax(1)
        after = digits_target(rec.images).argmax(1)
    hit_before = float((before == rec.labels).float().mean())
    hit_after = float((after == rec.labels).float().mean())
    # on 8x8 digits eps = 0.1 is small (16 grey levels): measured 0.66 after vs ~0.2 before
    assert hit_after > 0.5 and hit_after > hit_before + 0.3  # the target is fooled
    # each image is a public image moved by at most eps = 0.1 per pixel
    d = torch.cdist(rec.images.flatten(1), pub, p=float("inf")).min(dim=1).values
    assert float(d.max()) <= 0.1 + 1e-5
    again = adversarial_reference(p, [0, 1, 2, 3, 4], digits_target, per_class=20, seed=0,
                                  steps=40)
    assert torch.equal(rec.images, again.images)


def test_too_few_held_out_images_is_a_clear_error(digits_protocol):
    from invbench.data.protocol import Protocol, Split

    p = digits_protocol
    one = Split(p.private_test.x[:2], torch.tensor([0, 1]))
    tiny = Protocol(dataset="x", private_train=p.private_train, private_test=one,
                    public=p.public, private_classes=p.private_classes,
                    public_classes=p.public_classes, class_names=p.class_names, seed=0)
    with pytest.raises(DataError, match="held-out private image"):
        split_holdout(tiny, seed=0)
