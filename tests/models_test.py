"""resjax.models: Table 1, its variants and the ImageNet network."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from resjax import models

TINY = dict(stem=(3, 4, 1), widths=(8, 16), blocks=(2, 2), strides=(1, 2))
VARIANTS = {
    "paper": {},
    "no_shortcut": {"shortcut": False},
    "standard_init": {"init_scheme": "standard"},
    "fixup_init": {"init_scheme": "fixup"},
    "trained_head": {"head": "trained"},
    "batch_norm": {"norm": "batch"},
    "conv_bias": {"conv_bias": True, "init_scheme": "fixup"},
    "weight_standardization": {"weight_standardization": True, "init_scheme": "fixup", "conv_bias": True},
}


def count(params):
    return sum(x.size for x in jax.tree.leaves(params))


def test_table1_trainable_parameters_match_the_table():
    net = models.table1(10)
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    convs = [x for x in jax.tree.leaves(shapes["params"]) if x.ndim == 4]
    assert len(convs) == 55  # "55 convolutions"
    assert count(shapes["params"]) == models.table1_parameter_count() == 13_538_736
    assert abs(13_538_736 - 13.59e6) / 13.59e6 < 0.005  # the text's 13.59M, within 0.4%


def test_paper_initialisation_scales():
    params = models.table1(10, **TINY).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    assert np.std(params["stage1_block1"]["conv2"]["kernel"]) == pytest.approx(1 / (9 * 16), rel=0.1)
    assert np.std(params["stem"]["kernel"]) == pytest.approx(1 / (3 * math.sqrt(4)), rel=0.3)


def test_shortcut_pools_and_zero_pads():
    block = models.ResidualBlock(8, stride=2)
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 3))
    variables = block.init(jax.random.key(1), x)
    zero = jax.tree.map(jnp.zeros_like, variables)
    out = block.apply(zero, x)  # residual branch zero: only the shortcut remains
    pooled = x.reshape(1, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out[..., :3], pooled, rtol=1e-6)
    np.testing.assert_allclose(out[..., 3:], 0.0)


def test_fixup_blocks_are_the_identity_at_initialisation_but_not_stuck_there():
    block = models.ResidualBlock(8, init_scheme="fixup", total_blocks=4)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 8))
    variables = block.init(jax.random.key(1), x)
    np.testing.assert_array_equal(block.apply(variables, x), x)
    conv1 = variables["params"]["conv1"]["kernel"]
    assert np.std(conv1) == pytest.approx(math.sqrt(2 / (9 * 8 * 4)), rel=0.1)  # He, scaled by L^(-1/2)
    grad = jax.grad(lambda p: jnp.sum(block.apply({"params": p}, x) ** 2))(variables["params"])
    assert float(jnp.abs(grad["conv2"]["kernel"]).max()) > 0.1  # C_2 moves on the first step


def test_conv_bias_adds_one_zero_bias_per_channel_and_keeps_the_identity():
    plain, biased = (models.table1(10, **TINY, init_scheme="fixup", conv_bias=b) for b in (False, True))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    p0, p1 = (net.init(jax.random.key(1), x)["params"] for net in (plain, biased))
    biases = [b for b in jax.tree.leaves(p1) if b.ndim == 1]
    assert count(p1) - count(p0) == sum(b.size for b in biases) == 4 + 2 * (2 * 8 + 2 * 16)
    assert all(not np.any(b) for b in biases)
    np.testing.assert_array_equal(biased.apply({"params": p1}, x), plain.apply({"params": p0}, x))


def test_unknown_init_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="init_scheme='he' is not one of 'paper', 'standard', 'fixup'"):
        models.table1(10, **TINY, init_scheme="he").init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


def test_fixed_head_is_not_a_parameter_and_is_reproducible():
    net = models.table1(10, **TINY)
    x = jnp.ones((2, 8, 8, 3))
    v1 = net.init(jax.random.key(0), x)
    assert "head" not in v1["params"]
    fresh = models.table1(10, **TINY)  # a restored run builds the module again
    np.testing.assert_array_equal(net.apply(v1, x), fresh.apply(v1, x))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_runs_under_jit_and_per_example_vmap_grad(name):
    net = models.table1(10, **TINY, **VARIANTS[name])
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    y = jnp.arange(4) % 10
    variables = net.init(jax.random.key(1), x[:1])
    logits = jax.jit(lambda v, x: net.apply(v, x))(variables, x)
    assert logits.shape == (4, 10) and bool(jnp.all(jnp.isfinite(logits)))

    def loss(params, xi, yi):
        out = net.apply({**variables, "params": params}, xi[None])
        return -jax.nn.log_softmax(out)[0, yi]

    grads = jax.jit(jax.vmap(jax.grad(loss), (None, 0, 0)))(variables["params"], x, y)
    leaf = jax.tree.leaves(grads)[0]
    assert leaf.shape[0] == 4 and bool(jnp.all(jnp.isfinite(leaf)))


def test_imagenet34_shapes():
    net = models.imagenet34(1000)
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    convs = [x for x in jax.tree.leaves(shapes["params"]) if x.ndim == 4]
    assert len(convs) == 33  # stem + 16 blocks x 2: 34 layers with the head
    out = jax.eval_shape(lambda v: net.apply(v, jnp.zeros((2, 64, 64, 3))), shapes)
    assert out.shape == (2, 1000)


def test_skip_branch_zeroes_whole_examples_and_rescales_the_rest():
    h = jnp.ones((2000, 2, 2, 3))
    out = np.asarray(models.skip_branch(jax.random.key(0), h, 0.25)).reshape(2000, -1)
    dropped = np.all(out == 0, axis=1)
    assert np.all(dropped | np.all(np.isclose(out, 1 / 0.75), axis=1))  # an example keeps all or nothing
    assert abs(dropped.mean() - 0.25) < 0.04


def test_drop_path_acts_in_training_only_with_depth_proportional_rates():
    net = models.ResNet(num_classes=3, stem=(3, 4, 1), widths=(4, 8), blocks=(2, 2), strides=(1, 2),
                        init_scheme="standard", drop_path=0.5)
    x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
    variables = net.init(jax.random.key(0), x)
    evaluate = net.apply(variables, x)
    plain = models.ResNet(**{**{f: getattr(net, f) for f in models.OPTIONS}, "drop_path": 0.0}, num_classes=3)
    np.testing.assert_array_equal(evaluate, plain.apply(variables, x))  # evaluation: the whole network
    np.testing.assert_array_equal(plain.apply(variables, x, train=True), evaluate)  # no BN: train = eval at 0
    runs = [net.apply(variables, x, train=True, rngs={"drop_path": jax.random.key(k)}) for k in range(2)]
    assert not np.allclose(runs[0], runs[1]) and not np.allclose(runs[0], evaluate)
    rates = []

    def record(call, args, kwargs, context):
        if isinstance(context.module, models.ResidualBlock) and context.method_name == "__call__":
            rates.append(context.module.drop)
        return call(*args, **kwargs)

    with nn.intercept_methods(record):
        net.apply(variables, x)
    assert rates == [0.125, 0.25, 0.375, 0.5]  # block l of L: drop_path·l/L
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="drop_path"):
            models.ResNet(drop_path=bad)
    with pytest.raises(ValueError, match="shortcut"):
        models.ResNet(drop_path=0.1, shortcut=False)


@pytest.mark.parametrize("head", ["fixed", "trained"])
def test_float32_head_sets_the_logits_dtype_and_only_rounds_them(head):
    kw = dict(num_classes=3, stem=(3, 4, 1), widths=(4, 8), blocks=(1, 1), strides=(1, 2), dtype=jnp.bfloat16, head=head)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    wide = models.ResNet(**kw)
    variables = wide.init(jax.random.key(0), x)
    full, low = wide.apply(variables, x), models.ResNet(**kw, float32_head=False).apply(variables, x)
    assert full.dtype == jnp.float32 and low.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(low, np.float32), full, rtol=0.05, atol=0.02)
    assert not np.array_equal(np.asarray(low, np.float32), full)  # rounded: a different computation
    with pytest.raises(TypeError, match="float32_head"):
        models.ResNet(float32_head="no")


def test_relu_from_output_has_relus_values_and_derivative_zero_included():
    x = jnp.array([-2.0, -0.0, 0.0, 1e-30, 3.0])
    for f in (jax.nn.relu, models.relu_from_output):
        assert np.array_equal(f(x), jax.nn.relu(x))
    grad = lambda f: jax.vmap(jax.grad(f))(x)
    np.testing.assert_array_equal(grad(models.relu_from_output), grad(jax.nn.relu))
    np.testing.assert_array_equal(grad(models.relu_from_output), [0, 0, 0, 1, 1])  # 0 at 0, as jax.nn.relu


@pytest.mark.parametrize("norm", [None, "batch"])
def test_fusible_relu_trains_the_same_network_bitwise(norm):
    kw = dict(num_classes=3, **TINY, conv_bias=True, init_scheme="standard", norm=norm)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    variables = models.ResNet(**kw).init(jax.random.key(0), x)

    def grads(fusible):
        net = models.ResNet(**kw, fusible_relu=fusible)
        loss = lambda p: jnp.sum(net.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])[0] ** 2)
        return jax.jit(jax.value_and_grad(loss))(variables["params"])

    (plain_loss, plain), (fused_loss, fused) = grads(False), grads(True)
    assert plain_loss == fused_loss
    jax.tree.map(np.testing.assert_array_equal, fused, plain)
    with pytest.raises(TypeError, match="fusible_relu"):
        models.ResNet(fusible_relu=1)


def test_fusible_relu_leaves_xla_a_convolution_with_the_relu_as_its_only_user():
    """What makes the GPU fusion possible, read from XLA's optimised graph (here the CPU's):
    the backward pass's masks compare the ReLU's output, not the pre-activation (conv + bias),
    which jax.nn.relu's derivative reads (a second user of the convolution)."""
    import re

    x = jnp.ones((2, 8, 8, 3))

    def mask_operands(fusible):
        net = models.ResNet(num_classes=3, stem=(3, 4, 1), widths=(4, 8), blocks=(1, 1), strides=(1, 2),
                            conv_bias=True, fusible_relu=fusible)
        params = net.init(jax.random.key(0), x)["params"]
        hlo = jax.jit(jax.grad(lambda p: jnp.sum(net.apply({"params": p}, x) ** 2))).lower(params).compile().as_text()
        made_by = dict(re.findall(r"%(\S+) = \S+ ([\w-]+)\(", hlo))
        # the masks are over activations (4-d); jax.random.normal, which makes the fixed head,
        # compares too (since JAX 0.12.1 a maximum of its own, its NaN check)
        return [made_by.get(name) for name in re.findall(r"= pred\[\d+,\d+,\d+,\d+\]\S* compare\(%([^,)]+)", hlo)]

    assert mask_operands(True) == ["maximum", "maximum"]  # one mask per ReLU, read from its output
    assert mask_operands(False) == ["add", "add"]  # read from the convolution + bias


def test_standardize_gives_each_output_channel_zero_mean_and_norm_gain():
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 5, 7)) * 4.0 + 2.0
    gain = jnp.arange(1.0, 8.0)
    w = np.asarray(models.standardize(kernel, gain), np.float64)
    np.testing.assert_allclose(w.mean(axis=(0, 1, 2)), 0.0, atol=1e-6)
    # std·√fan_in = gain: the norm of each centred filter is its gain
    np.testing.assert_allclose(np.sqrt((w**2).sum(axis=(0, 1, 2))), gain, rtol=1e-5)
    np.testing.assert_array_equal(models.standardize(jnp.ones((3, 3, 2, 4)), 1.0), 0.0)  # eps: finite


def autodiff_standardize(kernel, gain, eps=1e-4):
    """standardize's formula with autodiff's gradient: the reference for its written-out one."""
    axes = tuple(range(kernel.ndim - 1))
    var = jnp.var(kernel, axis=axes, keepdims=True) * np.prod(kernel.shape[:-1])
    return (kernel - jnp.mean(kernel, axis=axes, keepdims=True)) * (jax.lax.rsqrt(jnp.maximum(var, eps)) * gain)


@pytest.mark.parametrize("gain_shape", [(6,), ()])
def test_standardize_gradient_is_autodiffs_and_the_finite_differences(gain_shape):
    keys = jax.random.split(jax.random.key(0), 3)
    kernel = jax.random.normal(keys[0], (3, 3, 4, 6), jnp.float64) + 0.3
    kernel = kernel.at[..., 0].set(0.7)  # a constant filter: its fan_in·var is below eps
    gain = jax.random.normal(keys[1], gain_shape, jnp.float64)
    upstream = jax.random.normal(keys[2], kernel.shape, jnp.float64)
    grads = [jax.grad(lambda k, g: jnp.sum(upstream * f(k, g)), argnums=(0, 1))(kernel, gain)
             for f in (models.standardize, autodiff_standardize)]
    np.testing.assert_array_equal(models.standardize(kernel, gain), autodiff_standardize(kernel, gain))
    for ours, autodiff in zip(*grads):
        np.testing.assert_allclose(ours, autodiff, rtol=1e-12, atol=1e-14)
    jax.test_util.check_grads(models.standardize, (kernel, gain), order=1, modes=["rev"])


def test_standardize_forward_mode_is_autodiffs_too():
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 4, 6), jnp.float64)
    gain, d_kernel, d_gain = jnp.linspace(0.5, 2.0, 6), jnp.ones_like(kernel).at[0].set(-2.0), jnp.ones(6)
    ours, theirs = (jax.jvp(f, (kernel, gain), (d_kernel, d_gain)) for f in (models.standardize, autodiff_standardize))
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, atol=1e-14)


def operations(jaxpr) -> int:
    """The primitive operations of a jaxpr, those of the jaxprs it calls counted in its place."""
    count = 0
    for eqn in jaxpr.eqns:
        inner = [p.jaxpr for p in eqn.params.values() if hasattr(getattr(p, "jaxpr", None), "eqns")]
        count += sum(operations(j) for j in inner) if inner else 1
    return count


def test_standardize_gradient_gives_the_compiler_less_to_do_than_autodiffs():
    kernel, gain, upstream = jnp.ones((3, 3, 8, 8)), jnp.ones(8), jnp.ones((3, 3, 8, 8))

    def gradient_ops(f):
        grad = jax.grad(lambda k, g: jnp.sum(upstream * f(k, g)), argnums=(0, 1))
        return operations(jax.make_jaxpr(grad)(kernel, gain).jaxpr)

    assert gradient_ops(models.standardize) < 0.85 * gradient_ops(autodiff_standardize)  # 57 against 72 (JAX 0.10.2)


def test_ws_conv_depends_on_the_kernels_direction_only_and_keeps_unit_variance_after_a_relu():
    conv = models.WSConv(64, gain=models.RELU_GAIN)
    h = jax.nn.relu(jax.random.normal(jax.random.key(0), (8, 16, 16, 64)))
    variables = conv.init(jax.random.key(1), h)
    out = conv.apply(variables, h)
    assert float(jnp.var(out)) == pytest.approx(1.0, abs=0.1)  # 0.94 here: the zero padding at the borders
    scaled = jax.tree.map(lambda p: p, variables)
    scaled["params"]["kernel"] = variables["params"]["kernel"] * 3.0 + 0.5
    np.testing.assert_allclose(conv.apply(scaled, h), out, rtol=1e-4, atol=1e-5)
    # the same convolution as lax's, with the standardised kernel
    w = models.standardize(variables["params"]["kernel"], models.RELU_GAIN * variables["params"]["scale"])
    reference = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme, identity", [("fixup", True), ("standard", False)])
def test_weight_standardised_fixup_blocks_start_as_the_identity_and_leave_it(scheme, identity):
    block = models.ResidualBlock(8, init_scheme=scheme, total_blocks=4, weight_standardization=True)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 8))
    variables = block.init(jax.random.key(1), x)
    params = variables["params"]
    assert set(params["conv1"]) == set(params["conv2"]) == {"kernel", "scale"}
    np.testing.assert_array_equal(params["conv2"]["scale"], 0.0 if identity else 1.0)
    assert bool(jnp.all(block.apply(variables, x) == x)) is identity
    grad = jax.grad(lambda p: jnp.sum(block.apply({"params": p}, x) ** 2))(params)
    assert float(jnp.abs(grad["conv2"]["scale"]).max()) > 0.1  # the zero scale moves on the first step


def test_weight_standardization_refuses_the_papers_initialisation():
    with pytest.raises(ValueError, match="removes the scale that init_scheme='paper' sets; use init_scheme='fixup'"):
        models.table1(10, **TINY, weight_standardization=True)


def stacked(params, blocks):
    """Unrolled parameters in scan_blocks' form: each stage's blocks 1.. stacked."""
    out = {name: p for name, p in params.items() if not any(name.startswith(f"stage{s}_block") and name != f"stage{s}_block0"
                                                             for s in range(len(blocks)))}
    for s, n in enumerate(blocks):
        out[f"stage{s}_blocks"] = {"block": jax.tree.map(lambda *a: jnp.stack(a),
                                                         *(params[f"stage{s}_block{i}"] for i in range(1, n)))}
    return out


@pytest.mark.parametrize("options", [{}, {"weight_standardization": True, "conv_bias": True, "fusible_relu": True}])
def test_scan_blocks_computes_the_unrolled_network_with_each_stages_later_blocks_stacked(options):
    kw = dict(num_classes=3, stem=(3, 4, 1), widths=(4, 8), blocks=(3, 4), strides=(1, 2), init_scheme="fixup", **options)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    unrolled, scanned = models.ResNet(**kw), models.ResNet(**kw, scan_blocks=True)
    params = unrolled.init(jax.random.key(0), x)["params"]
    keys = iter(jax.random.split(jax.random.key(2), 100))  # away from fixup's zeros: every block does something
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(next(keys), p.shape), params)
    own = scanned.init(jax.random.key(0), x)["params"]
    assert jax.tree.map(jnp.shape, own) == jax.tree.map(jnp.shape, stacked(params, kw["blocks"]))
    assert own["stage1_blocks"]["block"]["conv1"]["kernel"].shape == (3, 3, 3, 8, 8) and count(own) == count(params)
    kernels = own["stage1_blocks"]["block"]["conv1"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])  # each block initialised from its own key

    def loss(net, p):
        return jnp.sum(net.apply({"params": p}, x, train=True) ** 2)

    (unrolled_loss, unrolled_grad) = jax.jit(jax.value_and_grad(lambda p: loss(unrolled, p)))(params)
    (scanned_loss, scanned_grad) = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p)))(stacked(params, kw["blocks"]))
    np.testing.assert_allclose(scanned_loss, unrolled_loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max()),
                 scanned_grad, stacked(unrolled_grad, kw["blocks"]))  # float32 sums in another order
    with pytest.raises(TypeError, match="scan_blocks"):
        models.ResNet(scan_blocks="yes")


def test_scan_blocks_gives_each_stacked_block_its_own_drop_path_rate(monkeypatch):
    kw = dict(num_classes=3, stem=(3, 4, 1), widths=(4, 8), blocks=(3, 2), strides=(1, 2), init_scheme="standard",
              drop_path=0.5)
    unrolled, scanned = models.ResNet(**kw), models.ResNet(**kw, scan_blocks=True)
    x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
    params = unrolled.init(jax.random.key(0), x)["params"]
    variables = {"params": stacked(params, kw["blocks"])}
    runs = [scanned.apply(variables, x, train=True, rngs={"drop_path": jax.random.key(k)}) for k in range(2)]
    assert not np.allclose(runs[0], runs[1]) and not np.allclose(runs[0], scanned.apply(variables, x))
    # each branch scaled by 1 + its rate instead of skipped: the output says every block's rate
    monkeypatch.setattr(models, "skip_branch", lambda key, h, drop: h * (1.0 + drop))
    rngs = {"drop_path": jax.random.key(0)}
    expected = unrolled.apply({"params": params}, x, train=True, rngs=rngs)  # rates 0.1 ... 0.5 (tested above)
    np.testing.assert_allclose(scanned.apply(variables, x, train=True, rngs=rngs), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, unrolled.apply({"params": params}, x))
