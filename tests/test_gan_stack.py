"""Per-class GANs of several subsets trained as one stack (gans/stack.py): each member learns from its own
images only, gets exactly the update it would get alone, and splits out as an ordinary per-class GAN."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from data.config import ConfigError
from data.hooks import Hooks, Interrupted
from data.provenance import fingerprints
from gans.config import make_config
from gans.stack import GanStackConfig, split, stack_images, train_stack
from gans.train import RealBatches, train

STACKABLE = ("dcgan", "wgan_gp", "sngan")


def member_sets(pneumonia, count: int = 3, size: int = 40):
    """`count` disjoint subsets of PneumoniaMNIST's training split, both classes in each."""
    order = np.random.default_rng(0).permutation(len(pneumonia.train))
    return [pneumonia.train.take(np.sort(order[k * size:(k + 1) * size])) for k in range(count)]


def members(gan: str, count: int = 3, **settings):
    return [make_config(gan, "quick", seed=seed, train_indices=[seed], **settings) for seed in range(count)]


def test_each_member_draws_real_images_of_its_own_subset_and_class_only(pneumonia):
    sets = member_sets(pneumonia)
    batches = RealBatches(stack_images(sets), per_class=True, device=torch.device("cpu"))
    real, _ = batches.draw(64)  # 64 × (3 members · 2 classes · 1 channel) × 28 × 28
    drawn = ((real + 1) * 127.5).round().to(torch.uint8).numpy()
    for k, subset in enumerate(sets):
        for c in range(2):
            own = set(fingerprints(subset.images[subset.labels == c]).tolist())
            images = drawn[:, k * 2 + c, :, :, None]
            assert set(fingerprints(images).tolist()) <= own, (k, c)


@pytest.mark.parametrize("gan", STACKABLE)
def test_a_split_member_draws_exactly_the_images_of_its_slice_of_the_stack(pneumonia, gan):
    configs = members(gan, steps=3)
    sets = member_sets(pneumonia)
    stack = train(configs[0], stack_images(sets))
    latent = configs[0].latent
    z = torch.randn(6, len(configs) * 2 * latent)
    labels = torch.tensor([0, 1, 1, 0, 0, 1])
    for k, member in enumerate(split(stack, configs, num_classes=2)):
        assert member.groups == 2 and member.steps_done == 3
        mine = member.decode(z[:, k * 2 * latent:(k + 1) * 2 * latent], labels)
        assert torch.equal(mine, stack.decode(z, labels + 2 * k)), k


def one_update(gan, real: torch.Tensor, z: torch.Tensor) -> None:
    """One discriminator and one generator update on given real images and noise (no random numbers but the
    gradient penalty's, seeded by the caller)."""
    fake = gan.generate(z, None)
    loss_d = gan.d_loss(real, None, fake.detach(), None)
    gan.opt_d.zero_grad()
    loss_d.backward()
    gan.opt_d.step()
    loss_g = gan.g_loss(fake, None)
    gan.opt_g.zero_grad()
    loss_g.backward()
    gan.opt_g.step()


@pytest.mark.parametrize("gan", STACKABLE)
def test_a_member_gets_the_update_it_would_get_alone(pneumonia, gan):
    """Weights, batch-norm statistics and Adam moments of a member stepped inside the stack equal those of
    its split copy stepped alone on the same real images and noise."""
    configs = members(gan, steps=2)
    sets = member_sets(pneumonia)
    stack = train(configs[0], stack_images(sets))
    alone = split(stack, configs, num_classes=2)
    real = torch.rand(16, len(configs) * 2, 28, 28) * 2 - 1
    z = torch.randn(16, len(configs) * 2 * configs[0].latent)
    torch.manual_seed(7)
    one_update(stack, real, z)
    for k, member in enumerate(alone):
        torch.manual_seed(7)  # the gradient penalty's interpolation weights: one per image, as in the stack
        one_update(member, real[:, 2 * k:2 * k + 2], z.chunk(len(configs), 1)[k])
    for k, (stepped, member) in enumerate(zip(split(stack, configs, num_classes=2), alone)):
        for name, theirs in member.state_dict().items():
            mine = stepped.state_dict()[name]
            for key, a, b in flat(name, mine, theirs):
                assert torch.allclose(a.float(), b.float(), atol=2e-6, rtol=1e-4), (gan, k, key)


def flat(prefix, a, b):
    if isinstance(a, torch.Tensor):
        yield prefix, a, b
    elif isinstance(a, dict):
        for key in a:
            yield from flat(f"{prefix}.{key}", a[key], b[key])
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from flat(f"{prefix}[{i}]", x, y)


def test_train_stack_returns_one_gan_per_member_and_refuses_mismatched_members(pneumonia):
    configs = members("dcgan", count=2, steps=2)
    gans = train_stack(GanStackConfig(members=configs), member_sets(pneumonia, count=2))
    assert [g.steps_done for g in gans] == [2, 2]
    with pytest.raises(ConfigError, match="members differ in width"):
        GanStackConfig(members=[configs[0], configs[1].replace(width=8)])
    with pytest.raises(ConfigError, match="only per-class GANs stack"):
        GanStackConfig(members=members("acgan", count=2))
    with pytest.raises(ConfigError, match="only per-class GANs stack"):
        GanStackConfig(members=members("dcgan", count=2, per_class=False))
    with pytest.raises(ValueError, match="subsets of one size"):
        train_stack(GanStackConfig(members=members("dcgan", count=2, epochs=1.0)),
                    [member_sets(pneumonia, 1, 40)[0], member_sets(pneumonia, 1, 30)[0]])


def test_a_stack_stopped_and_resumed_ends_as_the_uninterrupted_stack(pneumonia, tmp_path):
    """Stopped after step 2 of 5, the stack resumes from its last.pt: every member ends with the weights of the
    stack that never stopped, and steps 3 to 5 run once."""
    config = GanStackConfig(members=members("dcgan", count=2, steps=5, log_every=1, checkpoint_every=100))
    sets = member_sets(pneumonia, count=2)
    whole = train_stack(config, sets)
    progressed = []
    hooks = Hooks(should_stop=lambda: progressed == [1, 2], checkpoints=tmp_path,
                  progress=lambda done, total, *args, **kwargs: progressed.append(done))
    with pytest.raises(Interrupted):
        train_stack(config, sets, hooks)
    resumed = train_stack(config, sets, replace(hooks, should_stop=lambda: False))
    assert progressed == [1, 2, 3, 4, 5]
    for mine, theirs in zip(resumed, whole):
        for name, a, b in flat("gan", mine.state_dict(), theirs.state_dict()):
            assert torch.equal(a, b), name
