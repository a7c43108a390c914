"""K EfficientNets of one architecture as one computation (a "packed ensemble").

A study trains the same small EfficientNet once per (arm, seed); packing its members into one
network of K-times-wider grouped layers was meant to make K of them cost little more than one. On
the 2-core CPU it does not (bench/packed_classifier.py): the convolution kernels, not per-layer
overhead, dominate a step, and oneDNN's grouped kernels do less per second than the plain ones, so a
packed step of K members costs about as much as K plain steps (0.9-1.2x at K=3-10 with the heap
allocator, up to 2x without) and CPU bf16 autocast is slower still. It
is what `classifier.batched` trains a study's members with (StudyConfig.batched), on CUDA by default,
where launch overhead does dominate; no GPU measurement yet.

Layout: member k's activations are channel block k of every tensor. Every convolution is
grouped by member (stem, 1×1 and squeeze-excite convolutions: groups=K; depthwise:
groups=K·C), batch norm runs over K·C channels (each member keeps its own batch statistics and
running statistics), and the head is one linear layer per member. Members share nothing: the
gradient of the summed member losses with respect to member k's weights is exactly member k's
own gradient, and AdamW (elementwise) over the packed parameters is K separate AdamWs.

Every packed tensor is its members' tensors concatenated along dimension 0 (`pack`), so a
member's weights come back out by slicing (`member_state_dict`) and load into an ordinary model.

Dropout and drop-connect draw their masks per member from that member's `torch.Generator`, in
the order and shapes the ordinary model draws them from the global generator. `build_member`
returns the generator in the state `classifier.train.train_classifier` leaves the global one
in after building its model, so packed member k sees the very masks its ordinary run would.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.model import MBConvBlock
from torch import nn

from classifier.model import build_model


class PackedConv(nn.Module):
    """K same-shaped "same"-padded convolutions as one grouped convolution; member k's filters are output block k."""

    def __init__(self, convs: Sequence[nn.Conv2d]):
        super().__init__()
        first = convs[0]
        self.stride, self.dilation = first.stride, first.dilation
        self.groups = first.groups * len(convs)
        self.static_padding = copy.deepcopy(first.static_padding)
        self.weight = nn.Parameter(torch.cat([c.weight.detach() for c in convs]).clone())
        self.bias = nn.Parameter(torch.cat([c.bias.detach() for c in convs]).clone()) if first.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def packed_batch_norm(norms: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """One batch norm over the members' channels, holding each member's affine weights and running statistics."""
    first = norms[0]
    packed = nn.BatchNorm2d(first.num_features * len(norms), eps=first.eps, momentum=first.momentum,
                            device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(packed, name).copy_(torch.cat([getattr(n, name) for n in norms]))
        packed.num_batches_tracked.copy_(first.num_batches_tracked)
    return packed


swish = F.silu  # the package's plain Swish (`set_swish(memory_efficient=False)`) is nn.SiLU


def drop_connect(x: torch.Tensor, p: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """efficientnet_pytorch's drop_connect per member: one keep/drop draw per image of each member's batch."""
    n, keep = x.shape[0], 1 - p
    masks = torch.cat([torch.floor(keep + torch.rand([n, 1, 1, 1], dtype=x.dtype, device=x.device, generator=g))
                       for g in generators], dim=1)
    return x / keep * masks.repeat_interleave(x.shape[1] // len(generators), dim=1)


def dropout(x: torch.Tensor, p: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """torch's CPU dropout per member on N×K×F features: a Bernoulli(1-p) mask scaled by 1/(1-p)."""
    n, _, features = x.shape
    noise = torch.stack([torch.empty(n, features, dtype=x.dtype, device=x.device).bernoulli_(1 - p, generator=g)
                         for g in generators], dim=1)
    return x * noise.div_(1 - p)


class PackedMBConvBlock(nn.Module):
    """K MBConvBlocks of one shape; the forward of efficientnet_pytorch's MBConvBlock, grouped by member."""

    def __init__(self, blocks: Sequence[MBConvBlock]):
        super().__init__()
        first = blocks[0]
        self._block_args, self.has_se, self.id_skip = first._block_args, first.has_se, first.id_skip
        if first._block_args.expand_ratio != 1:
            self._expand_conv = PackedConv([b._expand_conv for b in blocks])
            self._bn0 = packed_batch_norm([b._bn0 for b in blocks])
        self._depthwise_conv = PackedConv([b._depthwise_conv for b in blocks])
        self._bn1 = packed_batch_norm([b._bn1 for b in blocks])
        if self.has_se:
            self._se_reduce = PackedConv([b._se_reduce for b in blocks])
            self._se_expand = PackedConv([b._se_expand for b in blocks])
        self._project_conv = PackedConv([b._project_conv for b in blocks])
        self._bn2 = packed_batch_norm([b._bn2 for b in blocks])

    def forward(self, inputs: torch.Tensor, drop_connect_rate: float, generators: Sequence[torch.Generator]):
        x = inputs
        if self._block_args.expand_ratio != 1:
            x = swish(self._bn0(self._expand_conv(x)))
        x = swish(self._bn1(self._depthwise_conv(x)))
        if self.has_se:
            squeezed = self._se_expand(swish(self._se_reduce(F.adaptive_avg_pool2d(x, 1))))
            x = torch.sigmoid(squeezed) * x
        x = self._bn2(self._project_conv(x))
        args = self._block_args
        if self.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
            if drop_connect_rate and self.training:
                x = drop_connect(x, drop_connect_rate, generators)
            x = x + inputs
        return x


class PackedEfficientNet(nn.Module):
    """K EfficientNets as one module: input N×(K·C_in)×H×W (member k's batch in channel block k), output N×K×classes.

    Build it with `pack`. `generators` (one per member, on the model's device) drive dropout and
    drop-connect in training mode; save `generator_states()` with a checkpoint to resume exactly.
    """

    def __init__(self, models: Sequence[EfficientNet], generators: Sequence[torch.Generator]):
        super().__init__()
        if len(models) != len(generators):
            raise ValueError(f"{len(models)} members but {len(generators)} generators")
        first = models[0]
        self.members = len(models)
        self.num_classes = first._fc.out_features
        self.in_channels = first._conv_stem.in_channels
        self.dropout_rate = first._global_params.dropout_rate
        self.drop_connect_rate = first._global_params.drop_connect_rate
        self.generators = list(generators)
        self._conv_stem = PackedConv([m._conv_stem for m in models])
        self._bn0 = packed_batch_norm([m._bn0 for m in models])
        self._blocks = nn.ModuleList(PackedMBConvBlock(blocks) for blocks in zip(*(m._blocks for m in models)))
        self._conv_head = PackedConv([m._conv_head for m in models])
        self._bn1 = packed_batch_norm([m._bn1 for m in models])
        self._fc = nn.Linear(first._fc.in_features, self.num_classes * self.members,
                             device=first._fc.weight.device, dtype=first._fc.weight.dtype)
        with torch.no_grad():
            self._fc.weight.copy_(torch.cat([m._fc.weight for m in models]))
            self._fc.bias.copy_(torch.cat([m._fc.bias for m in models]))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        k = self.members
        x = swish(self._bn0(self._conv_stem(inputs)))
        for idx, block in enumerate(self._blocks):
            rate = self.drop_connect_rate
            if rate:
                rate *= float(idx) / len(self._blocks)
            x = block(x, rate, self.generators)
        x = swish(self._bn1(self._conv_head(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1).view(x.shape[0], k, -1)  # N×K×features
        if self.training and self.dropout_rate:
            x = dropout(x, self.dropout_rate, self.generators)
        weight = self._fc.weight.view(k, self.num_classes, -1)
        logits = torch.baddbmm(self._fc.bias.view(k, 1, -1), x.transpose(0, 1), weight.transpose(1, 2))
        return logits.transpose(0, 1)

    def generator_states(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def set_generator_states(self, states: Sequence[torch.Tensor]) -> None:
        for g, state in zip(self.generators, states, strict=True):
            g.set_state(state)


def pack(models: Sequence[EfficientNet], generators: Sequence[torch.Generator]) -> PackedEfficientNet:
    """One packed network holding copies of `models`' weights (same variant, channels, image size and classes)."""
    if not models:
        raise ValueError("pack needs at least one model")
    shapes = {tuple((name, tuple(t.shape)) for name, t in m.state_dict().items()) for m in models}
    if len(shapes) != 1 or len({m._global_params for m in models}) != 1:
        raise ValueError("packed members must share variant, input channels, image size and number of classes")
    device = next(models[0].parameters()).device
    return PackedEfficientNet(models, generators).to(device, memory_format=torch.channels_last)


def member_state_dict(packed: PackedEfficientNet, k: int) -> dict[str, torch.Tensor]:
    """Member k's weights and batch-norm statistics, under the names an ordinary EfficientNet loads."""
    if not 0 <= k < packed.members:
        raise IndexError(f"member {k} of {packed.members}")
    return {name: t.clone() if name.endswith("num_batches_tracked") else t.chunk(packed.members)[k].clone()
            for name, t in packed.state_dict().items()}


def build_member(seed: int, num_classes: int, in_channels: int, image_size: int,
                 variant: str = "efficientnet-b0", weights_path: str = "") -> tuple[EfficientNet, torch.Generator]:
    """The model `train_classifier(seed=seed)` builds, and a generator in the state its dropout stream starts from.

    The global generator is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(num_classes, in_channels, image_size, variant, weights_path)
        generator = torch.Generator()
        generator.set_state(torch.get_rng_state())
    return model, generator


def pack_inputs(batches: Sequence[torch.Tensor]) -> torch.Tensor:
    """Members' N×C×H×W batches as the packed input N×(K·C)×H×W, channels-last."""
    return torch.cat(list(batches), dim=1).contiguous(memory_format=torch.channels_last)


def member_losses(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each member's mean cross-entropy (K values) from N×K×classes logits and N×K labels.

    `weights` (K×classes, optional) are per-member class weights, as `classifier.train.class_weights`
    gives for each member's own training set. Backpropagate their sum: members share no weights, so
    each member's gradient is that of its own loss.
    """
    return torch.stack([F.cross_entropy(logits[:, k], labels[:, k], weight=None if weights is None else weights[k])
                        for k in range(logits.shape[1])])
