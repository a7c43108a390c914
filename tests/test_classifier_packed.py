"""The packed EfficientNet is K ordinary EfficientNets at once: same logits (training and eval mode,
dropout and drop-connect included), same gradients, same weights after AdamW steps, and each
member's weights come back out as an ordinary model's state dict.

The ordinary models run unmodified, drawing dropout and drop-connect masks from the global
generator; packed member k draws from its own generator started in the same state. Grouped and
ordinary convolution kernels sum in different orders, and sixteen batch norms over small batches
amplify float32 rounding (a gradient can move by a few percent of itself), so gradients and
optimizer steps are compared in float64, where a logic error cannot hide inside the tolerance.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from classifier.evaluate import to_input
from classifier.model import build_model
from classifier.packed import build_member, member_losses, member_state_dict, pack, pack_inputs

SEEDS = (0, 1, 2)
CLASSES = 7
SIZE = 28
LOGITS = {"rtol": 1e-4, "atol": 5e-5}  # float32 logits are O(1); seen: about 1e-5 apart
EXACT = {"rtol": 1e-7, "atol": 1e-12}  # float64; seen: 1e-8 relative, 1e-15 on gradients that are zero but for rounding
# Adam turns those rounding-noise gradients into steps of lr·1e-15/eps = 2e-10; a real step is lr = 2e-3.
STEPPED = {"rtol": 1e-7, "atol": 1e-8}


def members(channels: int, dtype=torch.float32, seeds=SEEDS):
    """Ordinary models as train_classifier(seed=s) builds them, their dropout start states, and their pack."""
    built = [build_member(s, CLASSES, channels, SIZE) for s in seeds]
    models = [m.to(dtype) for m, _ in built]
    starts = [g.get_state() for _, g in built]
    return models, starts, pack(models, [g for _, g in built])


def batches(channels: int, n: int = 8, seed: int = 100, dtype=torch.float32) -> list[torch.Tensor]:
    """A different random batch per member."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, channels, SIZE, SIZE, generator=g, dtype=dtype).contiguous(memory_format=torch.channels_last)
            for _ in SEEDS]


def ordinary_forward(model, x, rng_state):
    """The unmodified model's forward with the global generator set to `rng_state`; the state it leaves."""
    torch.set_rng_state(rng_state)
    out = model(x)
    return out, torch.get_rng_state()


@pytest.mark.parametrize("channels", [1, 3])
def test_packed_forward_in_training_mode_equals_each_members_forward_with_its_dropout_masks(channels):
    models, starts, packed = members(channels)
    xs = batches(channels)
    packed.train()
    out = packed(pack_inputs(xs))
    assert out.shape == (8, len(SEEDS), CLASSES)
    with torch.random.fork_rng(devices=[]):
        for k, model in enumerate(models):
            expected, after = ordinary_forward(model.train(), xs[k], starts[k])
            torch.testing.assert_close(out[:, k], expected, **LOGITS)
            assert torch.equal(packed.generators[k].get_state(), after)  # drew exactly what the model drew


def test_packed_forward_in_eval_mode_uses_each_members_running_statistics():
    models, starts, packed = members(3)
    xs = batches(3)
    packed.train()
    packed(pack_inputs(xs))  # moves the running statistics, differently per member
    packed.eval()
    eval_xs = batches(3, seed=7)
    out = packed(pack_inputs(eval_xs))
    with torch.random.fork_rng(devices=[]):
        for k, model in enumerate(models):
            ordinary_forward(model.train(), xs[k], starts[k])
            with torch.no_grad():
                torch.testing.assert_close(out[:, k], model.eval()(eval_xs[k]), **LOGITS)
    assert not torch.allclose(out[:, 0], out[:, 1], atol=1e-3)


def test_packed_gradients_equal_each_members_own_gradients():
    models, starts, packed = members(3, torch.float64)
    xs = batches(3, dtype=torch.float64)
    labels = torch.randint(0, CLASSES, (8, len(SEEDS)), generator=torch.Generator().manual_seed(5))
    packed.train()
    member_losses(packed(pack_inputs(xs)), labels).sum().backward()
    with torch.random.fork_rng(devices=[]):
        for k, model in enumerate(models):
            out, _ = ordinary_forward(model.train(), xs[k], starts[k])
            F.cross_entropy(out, labels[:, k]).backward()
    ordinary = [dict(m.named_parameters()) for m in models]
    for name, p in packed.named_parameters():
        for k in range(len(SEEDS)):
            torch.testing.assert_close(p.grad.chunk(len(SEEDS))[k], ordinary[k][name].grad, **EXACT,
                                       msg=lambda m, name=name, k=k: f"{name}, member {k}: {m}")


def test_one_adamw_over_the_pack_equals_separate_adamws_per_member_on_real_images(derma):
    models, starts, packed = members(3, torch.float64)
    images, labels = torch.from_numpy(derma.train.images), torch.from_numpy(derma.train.labels)
    steps, n = 3, 8
    picks = [torch.randint(0, len(images), (steps, n), generator=torch.Generator().manual_seed(s)) for s in SEEDS]

    packed.train()
    optimizer = torch.optim.AdamW(packed.parameters(), lr=2e-3, weight_decay=0.05)
    for step in range(steps):
        xs = [to_input(images[p[step]], torch.device("cpu")).double() for p in picks]
        loss = member_losses(packed(pack_inputs(xs)), torch.stack([labels[p[step]] for p in picks], 1)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with torch.random.fork_rng(devices=[]):
        for k, model in enumerate(models):
            model.train()
            own = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
            torch.set_rng_state(starts[k])
            for step in range(steps):
                out = model(to_input(images[picks[k][step]], torch.device("cpu")).double())
                own.zero_grad(set_to_none=True)
                F.cross_entropy(out, labels[picks[k][step]]).backward()
                own.step()
            assert torch.equal(packed.generators[k].get_state(), torch.get_rng_state())
            trained = member_state_dict(packed, k)
            for name, value in model.state_dict().items():
                torch.testing.assert_close(trained[name], value, **STEPPED,
                                           msg=lambda m, name=name, k=k: f"{name}, member {k}: {m}")
            start = build_member(SEEDS[k], CLASSES, 3, SIZE)[0].double().state_dict()
            assert not torch.allclose(trained["_fc.weight"], start["_fc.weight"])  # the steps did move it


def test_member_state_dict_round_trips_into_an_ordinary_model():
    built = [build_member(s, CLASSES, 1, SIZE) for s in SEEDS]
    models = [m for m, _ in built]
    with torch.no_grad():
        for model, x in zip(models, batches(1, seed=11)):
            model.train()(x)  # trained running statistics, different per member
    packed = pack(models, [g for _, g in built])
    for k, model in enumerate(models):
        unpacked = member_state_dict(packed, k)
        assert unpacked.keys() == model.state_dict().keys()
        assert all(torch.equal(unpacked[name], value) for name, value in model.state_dict().items())
    packed.train()
    packed(pack_inputs(batches(1)))  # new running statistics
    packed.eval()
    xs = batches(1, seed=3)
    with torch.no_grad():
        out = packed(pack_inputs(xs))
        for k in range(len(SEEDS)):
            fresh = build_model(CLASSES, 1, SIZE)
            fresh.load_state_dict(member_state_dict(packed, k))
            torch.testing.assert_close(fresh.eval()(xs[k]), out[:, k], **LOGITS)


def test_a_members_output_depends_only_on_its_own_input():
    _, _, packed = members(3)
    packed.train()  # batch statistics: an untrained net in eval mode hardly looks at its input
    starts = packed.generator_states()
    xs = batches(3)
    with torch.no_grad():
        before = packed(pack_inputs(xs))
        xs[1] = xs[1].flip(0)
        packed.set_generator_states(starts)
        after = packed(pack_inputs(xs))
    assert torch.equal(before[:, 0], after[:, 0]) and torch.equal(before[:, 2], after[:, 2])
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_pack_refuses_members_of_different_shapes():
    one, g = build_member(0, CLASSES, 3, SIZE)
    other, h = build_member(1, CLASSES + 1, 3, SIZE)
    with pytest.raises(ValueError, match="share"):
        pack([one, other], [g, h])
    with pytest.raises(ValueError, match="generators"):
        pack([one], [g, h])
