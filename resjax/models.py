"""Section 4: all-convolutional residual networks (Table 1) as Flax modules.

Block: x + C_2(ReLU(C_1 x)); only C_1 may have stride 2; when a block changes the
shape, the shortcut is average-pooled (stride 2) and zero-padded in channels. No
batch norm, dropout or max-pool by default. Initialisation (Section 4): a residual
convolution with k x k kernels and c output channels draws N(0, σ²), σ = 1/(k²c);
a standard convolution σ = 1/(k√c). The head is a fixed random projection
N(0, 1/c_last), not a parameter: it is regenerated from ``head_seed`` on every call,
so it is identical after a checkpoint restore and never trained.

  >>> import jax, jax.numpy as jnp
  >>> net = table1(num_classes=10)
  >>> variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  >>> logits = net.apply(variables, jnp.zeros((2, 32, 32, 3)))      # (2, 10)

Variants for the paper's comparison (same builder): ``shortcut=False`` (plain
network), ``init_scheme="standard"`` (1/(k√c) everywhere; "fixup" is a third, see
``block_inits``), ``head="trained"`` (a Dense
layer), ``norm="batch"`` (pre-activation blocks BN-ReLU-conv-BN-ReLU-conv).
``conv_bias=True`` gives every convolution a per-channel bias, initialised to zero (the
paper's network has none: without them it is positively homogeneous in its input).
``drop_path`` skips residual branches at random in training (stochastic depth; off by
default), ``float32_head=False`` keeps the head and logits in the compute dtype, and
``fusible_relu=True`` takes the ReLU's derivative from its output (``relu_from_output``:
the same numbers, a graph that XLA can fuse into the convolution before it).
``weight_standardization=True`` computes every convolution with its kernel standardised
(``WSConv``, the normaliser-free networks of Brock et al., 2021): it rescales weights,
not activations, and uses no batch statistics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from resjax import validation as _v

INIT_SCHEMES = ("paper", "standard", "fixup")
NORMS = (None, "batch")
HEADS = ("fixed", "trained")
# Var(relu(z)) for z ~ N(0, 1) is (1 - 1/π)/2; a zero-mean kernel sees the ReLU's
# output without its mean, so this gain restores unit variance after it.
RELU_GAIN = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))


def paper_std(kernel: int, channels: int, residual: bool) -> float:
    """σ = 1/(k²c) (residual) or 1/(k√c) (standard), Section 4."""
    return 1.0 / (kernel**2 * channels) if residual else 1.0 / (kernel * math.sqrt(channels))


def paper_init(kernel: int, channels: int, residual: bool):
    """N(0, σ²) with σ = paper_std(...), Section 4."""
    return nn.initializers.normal(stddev=paper_std(kernel, channels, residual))


def block_inits(scheme: str, kernel: int, channels: int, total_blocks: int):
    """(C_1 init, C_2 init) of a residual block.

    "paper": both σ = 1/(k²c) (Section 4); every branch starts near zero, and so do the
    gradients of both its convolutions (each is scaled by the other's weights).
    "standard": both 1/(k√c).
    "fixup": C_2 = 0 and C_1 He-normal scaled by L^(-1/2) over L blocks (Zhang et al.,
    2019): the block is exactly the identity at initialisation, as the paper wants, but
    C_2's gradient is not small, so training leaves the identity at once.
    """
    if scheme == "paper":
        return (paper_init(kernel, channels, True),) * 2
    if scheme == "standard":
        return (paper_init(kernel, channels, False),) * 2
    if scheme == "fixup":
        return nn.initializers.variance_scaling(2.0 / total_blocks, "fan_in", "normal"), nn.initializers.zeros
    _v.one_of("init_scheme", scheme, INIT_SCHEMES)


@jax.custom_jvp
def relu_from_output(x: jax.Array) -> jax.Array:
    """max(x, 0), whose derivative is read from the output: g where max(x, 0) != 0, else 0.

    The same values and gradients as ``jax.nn.relu`` (whose derivative is g where x > 0)
    for every non-NaN x, 0 at x = 0 included, but the backward pass no longer reads the
    pre-activation x: when x is a convolution's output, the ReLU is then its only user, the
    pattern XLA's GPU compiler fuses into the cuDNN convolution (bias and ReLU in its
    epilogue; ``fusible_relu``). ``!= 0`` rather than ``> 0``: XLA's simplifier rewrites
    max(x, 0) > 0 into x > 0, which would read x again. At NaN the mask passes g (NaN
    != 0) where ``jax.nn.relu`` gives 0; the value is NaN either way.
    """
    return jnp.maximum(x, 0)


relu_from_output.defjvps(lambda g, ans, x: jnp.where(ans != 0, g, jnp.zeros((), g.dtype)))


def relu(fusible: bool):
    """The network's ReLU: ``relu_from_output`` if ``fusible``, else ``jax.nn.relu``."""
    return relu_from_output if fusible else nn.relu


def skip_branch(key: jax.Array, h: jax.Array, drop: float | jax.Array) -> jax.Array:
    """Stochastic depth (Huang et al., 2016): each example's residual branch h (B, ...) is
    zeroed with probability ``drop`` (the block is then exactly the identity) and scaled
    by 1/(1 - drop) otherwise, so that evaluation uses the whole network unscaled.
    ``drop`` may be traced (a scanned stage's rate per block); h keeps its dtype."""
    keep = jax.random.bernoulli(key, 1.0 - drop, (h.shape[0],) + (1,) * (h.ndim - 1))
    return jnp.where(keep, h / jnp.asarray(1.0 - drop, h.dtype), jnp.zeros((), h.dtype))


@jax.custom_jvp
def standardize(kernel: jax.Array, gain: jax.Array, eps: float = 1e-4) -> jax.Array:
    """Scaled weight standardisation (Brock, De and Smith, 2021, "Characterizing signal
    propagation to close the performance gap in unnormalized ResNets"): each output
    channel of an HWIO kernel (..., c_out) becomes gain·(W − mean)/(std·√fan_in), its
    mean and std taken over its fan-in; ``gain`` (c_out,) or a scalar. ``eps`` bounds
    fan_in·var from below, as in their code, so a constant filter stays finite.

    Its derivative is written out (``_standardize_jvp``; reverse mode transposes it): the
    gradient's program has about a fifth fewer operations than autodiff's, and its sums
    over the fan-in do not wait on each other."""
    return _standardize(kernel, gain, eps)[0]


def _standardize(kernel, gain, eps):
    axes = tuple(range(kernel.ndim - 1))
    centred = kernel - jnp.mean(kernel, axis=axes, keepdims=True)
    norm_sq = jnp.var(kernel, axis=axes, keepdims=True) * math.prod(kernel.shape[:-1])  # Σ centred² over the fan-in
    r = jax.lax.rsqrt(jnp.maximum(norm_sq, eps))
    return centred * (r * gain), (centred, r, norm_sq > eps)


@standardize.defjvp
def _standardize_jvp(primals, tangents):
    """With c = W − mean(W), D = Σ c² over the fan-in and r = D^(-1/2) (where D > eps; a
    constant otherwise): dc = dW − mean(dW), dr = −r³ Σ c·dc = −r³ Σ c·dW (Σ c = 0), and
    d(gain·c·r) = gain·r·(dc − c·r² Σ c·dW) + dgain·c·r. Written with Σ c·dW, the
    gradient's three sums over the fan-in (of G·gain, of G·gain·c, of G·c) are
    independent of each other, so XLA can compute them in one pass."""
    kernel, gain, eps = primals
    d_kernel, d_gain, _ = tangents
    out, (centred, r, above) = _standardize(kernel, gain, eps)
    axes = tuple(range(kernel.ndim - 1))
    scale = r * gain
    d_centred = d_kernel - jnp.mean(d_kernel, axis=axes, keepdims=True)
    d_norm = jnp.where(above, r**2, 0.0) * jnp.sum(centred * d_kernel, axis=axes, keepdims=True)
    return out, scale * (d_centred - centred * d_norm) + centred * r * d_gain


class WSConv(nn.Module):
    """A SAME-padded 2-D convolution (NHWC) whose kernel is standardised on every call
    (``standardize``), times a fixed ``gain`` (``RELU_GAIN`` when the input is a ReLU's
    output, so that unit-variance pre-activations give a unit-variance output) and a
    trained per-channel ``scale`` (initialised by ``scale_init``: zeros makes the
    convolution output zero at first, as Fixup's C_2 = 0 does). Parameters: ``kernel``
    (k, k, c_in, features), ``scale`` (features,), ``bias`` (features,) if ``use_bias``;
    the kernel's own scale no longer matters, only its direction."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    use_bias: bool = False
    dtype: Any = jnp.float32
    gain: float = 1.0
    scale_init: Any = nn.initializers.ones

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        scale = self.param("scale", self.scale_init, (self.features,))
        w = standardize(kernel, self.gain * scale).astype(self.dtype)
        y = jax.lax.conv_general_dilated(x.astype(self.dtype), w, (self.strides,) * 2, "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y


def conv_layer(standardized: bool, features: int, kernel: int, stride: int, bias: bool, dtype, init,
               name: str, after_relu: bool = False):
    """The network's convolution: ``nn.Conv`` drawing its kernel from ``init``, or with
    ``standardized`` a ``WSConv`` whose scale starts at zero where ``init`` is Fixup's
    zeros (the branch is then the identity at first) and at one otherwise."""
    if not standardized:
        return nn.Conv(features, (kernel, kernel), strides=stride, padding="SAME", use_bias=bias, dtype=dtype,
                       kernel_init=init, name=name)
    scale_init = nn.initializers.zeros if init is nn.initializers.zeros else nn.initializers.ones
    return WSConv(features, kernel, stride, bias, dtype, RELU_GAIN if after_relu else 1.0, scale_init, name=name)


class ResidualBlock(nn.Module):
    """x + C_2(ReLU(C_1 x)), with the average-pool / zero-pad shortcut on a shape change."""

    channels: int
    stride: int = 1
    shortcut: bool = True
    init_scheme: str = "paper"
    norm: str | None = None
    dtype: Any = jnp.float32
    total_blocks: int = 1  # L, for init_scheme="fixup"
    conv_bias: bool = False
    drop: float = 0.0  # probability that training skips the branch (stochastic depth)
    fusible_relu: bool = False
    weight_standardization: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False, drop: jax.Array | None = None):
        """``drop``: this call's skip probability in place of the field's (a traced rate,
        under ``ResNet.scan_blocks``); given, the branch is skipped at random in training."""
        if self.shortcut and self.stride > 1 and (x.shape[-3] % self.stride or x.shape[-2] % self.stride):
            raise ValueError(
                f"block {self.name}: a stride-{self.stride} shortcut average-pools its input, whose spatial size "
                f"{x.shape[-3]}x{x.shape[-2]} is not divisible by {self.stride}; resize the images or change strides."
            )
        inits = block_inits(self.init_scheme, 3, self.channels, self.total_blocks)
        conv = lambda stride, i, name: conv_layer(
            self.weight_standardization, self.channels, 3, stride, self.conv_bias, self.dtype, inits[i], name,
            after_relu=i == 1,
        )
        bn = lambda name: nn.BatchNorm(use_running_average=not train, dtype=self.dtype, name=name)
        act = relu(self.fusible_relu)
        h = x
        if self.norm == "batch":
            h = act(bn("bn1")(h))
        h = conv(self.stride, 0, "conv1")(h)
        h = act(bn("bn2")(h) if self.norm == "batch" else h)
        h = conv(1, 1, "conv2")(h)
        if not self.shortcut:
            return h
        if train and (drop is not None or self.drop):
            h = skip_branch(self.make_rng("drop_path"), h, self.drop if drop is None else drop)
        s = x
        if self.stride > 1:
            s = nn.avg_pool(s, (self.stride, self.stride), strides=(self.stride, self.stride))
        extra = self.channels - s.shape[-1]
        if extra > 0:
            s = jnp.pad(s, [(0, 0)] * (s.ndim - 1) + [(0, extra)])
        return s + h


class RepeatedBlock(nn.Module):
    """One of a stage's identical blocks (all but its first) as ``nn.scan``'s body:
    ``block`` holds ResidualBlock's fields, ``rate`` is the block's skip probability in
    training (a scanned scalar, or None without stochastic depth)."""

    block: tuple[tuple[str, Any], ...]
    train: bool = False

    @nn.compact
    def __call__(self, x, rate):
        return ResidualBlock(**dict(self.block), name="block")(x, self.train, rate), None


def repeated_blocks(x, count: int, block: dict, train: bool, rates: Sequence[float] | None, name: str):
    """``count`` ResidualBlocks of the same shape applied to ``x`` under ``nn.scan``: one
    block's program, run ``count`` times; each parameter (and batch statistic) stacked on
    a new leading axis of length ``count``, each block's initialised from its own key.
    Call it inside a compact module (``name`` is the scanned module's)."""
    scanned = nn.scan(RepeatedBlock, variable_axes={"params": 0, "batch_stats": 0},
                      split_rngs={"params": True, "drop_path": True}, length=count)
    xs = None if rates is None else jnp.asarray(rates, jnp.float32)
    return scanned(tuple(block.items()), train, name=name)(x, xs)[0]


def is_kernel(leaf) -> bool:
    """Whether a parameter (or its optimiser state, or its average) of ResNet is a
    convolution kernel: (H, W, I, O), or (blocks, H, W, I, O) where model.scan_blocks
    stacks a stage's. Biases, gains and the head's (I, O) matrix are not."""
    return leaf.ndim >= 4


class ResNet(nn.Module):
    """Stem convolution, residual stages, global average pool, head.

    Attributes:
      num_classes: outputs.
      stem: (kernel, channels, stride) of the standard convolution.
      widths, blocks, strides: per stage, output channels, number of blocks, and the
        stride of its first block.
      shortcut, init_scheme, norm, conv_bias: the variants (see module docstring).
      drop_path: stochastic depth in training (Huang et al., 2016): block l of L skips its
        branch for each example with probability drop_path·l/L (0: never; the linear
        rule, so the last block is skipped with probability drop_path). Needs a
        "drop_path" rng in ``apply(..., train=True)``.
      float32_head: the global pool, the head and so the logits (and the training loss)
        in float32 whatever the compute dtype (default); False keeps them in ``dtype``,
        as a plain bfloat16 implementation would (the precision question of
        docs/section4.md).
      fusible_relu: the ReLUs take their derivative from their output
        (``relu_from_output``): the same numbers, and on a GPU XLA can fuse each ReLU
        (and the bias) into the convolution before it. Off by default until measured on
        a GPU (issue 10; benchmarks/gpu.sh x and y).
      weight_standardization: every convolution is a ``WSConv`` (scaled weight
        standardisation with a trained per-channel scale; Brock et al., 2021). With
        ``init_scheme="fixup"`` each branch's C_2 scale starts at zero (the identity at
        first, as Fixup); with "standard" every scale starts at one. The paper's σ sets
        kernel magnitudes, which standardisation removes, so "paper" is refused.
      scan_blocks: each stage's blocks after its first (the same shape, 8 of Table 1's 9)
        run as one block under ``nn.scan`` (``repeated_blocks``): the same network and
        numbers as unrolled, but one block's program per stage, so about a third of the
        program to compile (a lever on the compile's time; the loop may cost step time).
        Slow on a CPU (docs/section4.md). Their parameters are stacked, ``stage{s}_blocks/block/...`` with a leading
        axis of blocks − 1, in place of ``stage{s}_block1`` ... ``stage{s}_block{n-1}``;
        checkpoints of the two forms do not mix.
      head: "fixed" (random projection, not trained) or "trained" (Dense).
      head_seed: the fixed head's seed.
      dtype: compute dtype (bfloat16 on GPU/TPU); parameters stay float32.
    """

    num_classes: int = 10
    stem: tuple[int, int, int] = (3, 16, 1)
    widths: Sequence[int] = (64, 128, 256)
    blocks: Sequence[int] = (9, 9, 9)
    strides: Sequence[int] = (1, 2, 2)
    shortcut: bool = True
    init_scheme: str = "paper"
    norm: str | None = None
    head: str = "fixed"
    head_seed: int = 0
    dtype: Any = jnp.float32
    conv_bias: bool = False
    drop_path: float = 0.0
    float32_head: bool = True
    fusible_relu: bool = False
    weight_standardization: bool = False
    scan_blocks: bool = False

    def __post_init__(self):
        check_options(self)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        k, c, stride = self.stem
        std_init = paper_init(k, c, residual=False)
        x = conv_layer(self.weight_standardization, c, k, stride, self.conv_bias, self.dtype, std_init,
                       "stem")(x.astype(self.dtype))
        total, depth = sum(self.blocks), 0
        for stage, (width, count, first_stride) in enumerate(zip(self.widths, self.blocks, self.strides)):
            block = dict(channels=width, shortcut=self.shortcut, init_scheme=self.init_scheme, norm=self.norm,
                         dtype=self.dtype, total_blocks=total, conv_bias=self.conv_bias,
                         fusible_relu=self.fusible_relu, weight_standardization=self.weight_standardization)
            # stochastic depth's linear rule: block l of L is skipped with drop_path·l/L
            rates = [self.drop_path * (depth + i + 1) / total for i in range(count)]
            depth += count
            x = ResidualBlock(**block, stride=first_stride, drop=rates[0], name=f"stage{stage}_block0")(x, train)
            if self.scan_blocks and count > 1:
                x = repeated_blocks(x, count - 1, block, train, rates[1:] if self.drop_path else None,
                                    f"stage{stage}_blocks")
                continue
            for i in range(1, count):
                x = ResidualBlock(**block, drop=rates[i], name=f"stage{stage}_block{i}")(x, train)
        if self.norm == "batch":
            x = relu(self.fusible_relu)(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn_final")(x))
        head_dtype = jnp.float32 if self.float32_head else self.dtype
        x = jnp.mean(x.astype(head_dtype), axis=(1, 2))
        if self.head == "trained":
            return nn.Dense(self.num_classes, dtype=head_dtype, name="head")(x)
        projection = jax.random.normal(jax.random.key(self.head_seed), (x.shape[-1], self.num_classes))
        return x @ (projection / math.sqrt(x.shape[-1])).astype(head_dtype)


# The network options a configuration may set: ResNet's fields but those the caller sets
# separately (num_classes, dtype) and Flax's own (parent, name).
OPTIONS = tuple(f.name for f in dataclasses.fields(ResNet) if f.name not in ("num_classes", "dtype", "parent", "name"))


def check_names(options) -> None:
    """Refuses keyword arguments that are not network options, naming the nearest one."""
    for name in options:
        if name not in OPTIONS:
            raise TypeError(f"unknown network option {name!r}{_v.suggest(name, OPTIONS)}; the options are "
                            f"{', '.join(OPTIONS)} (num_classes and dtype are set separately).")


def _positive_ints(name: str, value, length: int | None = None) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a list of positive integers, got {value!r}.")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {value!r}.")
    return tuple(_v.integer(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))


def check_options(net: "ResNet") -> None:
    """Refuses network options that would build something else than asked (Section 4's
    family): unknown enumeration values (with the nearest allowed one), stage lists of
    different lengths (zip would truncate them), non-positive sizes, and channel counts
    that shrink along an identity shortcut (it zero-pads, it cannot drop channels)."""
    _v.integer("num_classes", net.num_classes, minimum=1)
    _v.integer("head_seed", net.head_seed, minimum=0)
    _, channels, _ = _positive_ints("stem (kernel, channels, stride)", net.stem, 3)
    stages = {name: _positive_ints(name, getattr(net, name)) for name in ("widths", "blocks", "strides")}
    if len({len(v) for v in stages.values()}) != 1 or not stages["widths"]:
        raise ValueError(
            "widths, blocks and strides give one entry per stage and must have the same length ≥ 1, got "
            + ", ".join(f"{name}={list(v)}" for name, v in stages.items()) + "."
        )
    if isinstance(net.drop_path, bool) or not isinstance(net.drop_path, (int, float)) or not 0 <= net.drop_path < 1:
        raise ValueError(f"drop_path must be a probability in [0, 1), got {net.drop_path!r}.")
    if net.drop_path and not net.shortcut:
        raise ValueError("drop_path skips residual branches: it needs shortcut=True (a plain network has none).")
    for name in ("shortcut", "conv_bias", "float32_head", "fusible_relu", "weight_standardization", "scan_blocks"):
        if not isinstance(getattr(net, name), bool):
            raise TypeError(f"{name} must be true or false, got {getattr(net, name)!r}.")
    _v.one_of("init_scheme", net.init_scheme, INIT_SCHEMES)
    _v.one_of("norm", net.norm, NORMS)
    _v.one_of("head", net.head, HEADS)
    if net.weight_standardization and net.init_scheme == "paper":
        raise ValueError("weight_standardization=true standardises every kernel, which removes the scale that "
                         "init_scheme='paper' sets; use init_scheme='fixup' (each branch starts as the identity) "
                         "or 'standard'.")
    widths = (channels, *stages["widths"])
    if net.shortcut and any(b < a for a, b in zip(widths, widths[1:])):
        raise ValueError(
            f"with shortcut=True the channels must not decrease from the stem's {channels} through widths "
            f"{list(stages['widths'])}: the identity shortcut zero-pads channels and cannot drop any."
        )


def table1(num_classes: int = 10, **overrides) -> ResNet:
    """The CIFAR network of Table 1: 55 convolutions, widths 16 | 64, 128, 256, 9 blocks each."""
    check_names(overrides.keys() - {"dtype"})
    return ResNet(num_classes=num_classes, **overrides)


def imagenet34(num_classes: int = 1000, **overrides) -> ResNet:
    """The all-convolutional variant of the 34-layer ResNet (Section 4): a 7x7 stride-2
    stem with 64 channels, no max-pool (a stride-2 first stage takes its place),
    stages of 3, 4, 6, 3 blocks with 64, 128, 256, 512 channels."""
    check_names(overrides.keys() - {"dtype"})
    config = dict(stem=(7, 64, 2), widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), strides=(2, 2, 2, 2))
    return ResNet(num_classes=num_classes, **{**config, **overrides})


def table1_parameter_count(num_classes: int = 10, widths=(64, 128, 256), blocks=(9, 9, 9), stem=16) -> int:
    """Trainable parameters of Table 1, derived from the table (3x3 kernels, no biases,
    fixed head): 3·3·3·16 + Σ_stages [3·3·c_in·c + 3·3·c·c + (blocks − 1)·2·3·3·c·c]."""
    total, c_in = 9 * 3 * stem, stem
    for c, count in zip(widths, blocks):
        total += 9 * c_in * c + 9 * c * c + (count - 1) * 2 * 9 * c * c
        c_in = c
    return total
