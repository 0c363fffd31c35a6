"""Section 3, experiment 4: random labels, constructed versus trained.

n CIFAR-10 training images (a fixed random subset, flattened, scaled to unit norm) get
uniformly random labels from ``classes``. Three networks of the form (3.1) (h_0 = A_0 x,
blocks h + V ReLU(U h + s), the output block V_out ReLU(U_out h + s_out), as
`resjax.expressivity` evaluates them):

- ``construct``: `expressivity.construct` (Theorem 3.2), exact in float64;
- ``trained, same shape``: the constructed network's shapes (width k, depth ℓ, units per
  block), freshly initialised and trained;
- ``trained, smallest``: the first of ``search`` (width k = units per block, depth ℓ),
  in increasing parameter count, that training fits.

Training: full-batch Adam at ``learning_rate`` on the cross-entropy of the outputs, float32,
at most ``steps`` steps (``same_shape_steps`` for the constructed shape), stopping at 100%
training accuracy (checked every 25 steps). Initialisation: A_0 N(0, 1)
(unit-norm inputs give unit-variance states), U N(0, 1/k), V = 0 and s = 0 (every block
starts as the identity), U_out N(0, 1/k), V_out N(0, 1/r).

Run: resjax experiment random-labels [--quick]
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from resjax import expressivity

COLUMNS = ("n", "method", "width", "depth", "params", "train_acc", "steps", "seconds")


@dataclasses.dataclass(frozen=True)
class Config:
    data: str = "../shared/data/cifar10-jpeg"
    sizes: tuple[int, ...] = (100, 1000, 10_000)
    classes: int = 10
    steps: int = 3_000
    # the constructed shape is ~n/6 blocks deep: at n = 10,000 a full-batch step of its
    # 1,667 blocks costs seconds here, so it gets fewer steps than the search's networks
    same_shape_steps: int = 200
    learning_rate: float = 1e-3
    search: tuple[tuple[int, int], ...] = ((16, 1), (64, 1), (256, 1))
    seed: int = 0


QUICK = Config(data="digits", sizes=(50, 200), steps=300, same_shape_steps=300, learning_rate=1e-2,
               search=((4, 1), (16, 1), (64, 1)))


def load(config: Config) -> np.ndarray:
    """The training images of ``config.data``, flattened, as float64 rows of unit norm
    (a fixed random order; the first n are the subset of size n)."""
    from resjax.train import loop
    from resjax.train.config import TrainConfig

    images = loop.load_splits(TrainConfig(data=config.data))[0].images
    X = expressivity.normalize(images.reshape(len(images), -1))
    return X[np.random.default_rng(config.seed).permutation(len(X))]


def init_params(key, shapes: dict) -> dict:
    """Fresh parameters of the given shapes (those of a Construction's params); float32."""
    ks = jax.random.split(key, 3)
    k, r = shapes["A0"][0], shapes["out"]["s"][0]
    normal = lambda key, shape, var: jax.random.normal(key, shape) * math.sqrt(var)
    return {"A0": normal(ks[0], shapes["A0"], 1.0),
            "blocks": {"U": normal(ks[1], shapes["blocks"]["U"], 1 / k), "V": jnp.zeros(shapes["blocks"]["V"]),
                       "s": jnp.zeros(shapes["blocks"]["s"])},
            "out": {"U": normal(ks[2], shapes["out"]["U"], 1 / k), "s": jnp.zeros(r),
                    "V": jax.random.normal(jax.random.fold_in(key, 3), shapes["out"]["V"]) / math.sqrt(r)}}


def shapes_of(d: int, width: int, depth: int, classes: int) -> dict:
    return {"A0": (width, d), "blocks": {"U": (depth, width, width), "V": (depth, width, width), "s": (depth, width)},
            "out": {"U": (classes, width), "s": (classes,), "V": (classes, classes)}}


def size_of(shapes: dict) -> int:
    """The parameter count of a network with these shapes."""
    return sum(math.prod(s) for s in jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple)))


def train(X: np.ndarray, labels: np.ndarray, shapes: dict, config: Config, steps: int) -> dict:
    """Full-batch Adam until 100% training accuracy (checked every 25 steps) or ``steps``."""
    import optax

    params = init_params(jax.random.key(config.seed), shapes)
    tx = optax.adam(config.learning_rate)
    X, y = jnp.asarray(X, jnp.float32), jnp.asarray(labels)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(expressivity.apply(p, X), y).mean()

    @jax.jit
    def step(p, state):
        updates, state = tx.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    accuracy = jax.jit(lambda p: jnp.mean(jnp.argmax(expressivity.apply(p, X), axis=1) == y))
    state, t0 = tx.init(params), time.perf_counter()
    for done in range(1, steps + 1):
        params, state = step(params, state)
        if (done % 25 == 0 or done == steps) and float(acc := accuracy(params)) == 1.0:
            break
    return {"train_acc": float(acc), "steps": done, "seconds": time.perf_counter() - t0,
            "params": expressivity.parameter_count(params)}


def run_size(X: np.ndarray, n: int, config: Config, progress) -> list[dict]:
    rng = np.random.default_rng([config.seed, n])
    Xn, labels = X[:n], rng.integers(0, config.classes, size=n)
    t0 = time.perf_counter()
    net = expressivity.construct(Xn, labels, config.classes, jax.random.key(config.seed), drop_conflicts=True)
    seconds = time.perf_counter() - t0
    _, acc = expressivity.fit_error(net.params, Xn, labels)
    rows = [{"n": n, "method": "construct", "width": net.width, "depth": net.depth, "params": net.parameter_count,
             "train_acc": acc, "steps": None, "seconds": seconds, "conflicts": len(net.conflicts)}]
    progress(1)
    shapes = jax.tree.map(np.shape, net.params)
    rows.append({"n": n, "method": "trained, same shape", "width": net.width, "depth": net.depth,
                 **train(Xn, labels, shapes, config, config.same_shape_steps)})
    progress(1)
    tried = []
    d, r = X.shape[1], config.classes
    for width, depth in sorted(config.search, key=lambda wd: size_of(shapes_of(d, *wd, r))):
        tried.append({"width": width, "depth": depth, **train(Xn, labels, shapes_of(d, width, depth, r), config, config.steps)})
        if tried[-1]["train_acc"] == 1.0:
            break
    fit = tried[-1] if tried[-1]["train_acc"] == 1.0 else None
    rows.append({"n": n, "method": "trained, smallest", **(fit or {"width": None, "depth": None, "params": None,
                                                                    "train_acc": max(t["train_acc"] for t in tried),
                                                                    "steps": None, "seconds": None}),
                 "tried": tried})
    progress(1)
    return rows


def check(config: Config) -> None:
    if min(config.sizes) < 2 or config.classes < 2 or min(config.steps, config.same_shape_steps) < 1 \
            or config.learning_rate <= 0:
        raise ValueError("sizes ≥ 2, classes ≥ 2, steps and same_shape_steps ≥ 1, and learning_rate > 0.")
    if not config.search or any(w < 1 or d < 1 for w, d in config.search):
        raise ValueError("search lists (width, depth) pairs, each ≥ 1.")


def run(config: Config = Config(), progress=None) -> list[dict]:
    """Three rows per n; ``progress(1)`` after each."""
    check(config)
    X = load(config)
    if max(config.sizes) > len(X):
        raise ValueError(f"sizes go up to {max(config.sizes)}, but {config.data!r} has {len(X)} training images.")
    rows = []
    for n in config.sizes:
        rows.extend(run_size(X, n, config, progress or (lambda k: None)))
    return rows


def size(config: Config) -> int:
    return 3 * len(config.sizes)


def plot(rows: list[dict], path) -> None:
    """Parameters against n for each method (hollow: training did not reach 100%), with
    n log n for scale; and the seconds each took."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for method, color in (("construct", "black"), ("trained, same shape", "tab:red"), ("trained, smallest", "tab:blue")):
        sel = [r for r in rows if r["method"] == method and r["params"]]
        if not sel:
            continue
        n = [r["n"] for r in sel]
        wide = dict(lw=5, alpha=0.4) if method == "construct" else {}  # under the same shape's line
        a.plot(n, [r["params"] for r in sel], "-", color=color, label=method, **wide)
        b.plot(n, [r["seconds"] for r in sel], "-", color=color, label=method)
        for r in sel:
            face = color if r["train_acc"] == 1.0 else "white"
            a.plot(r["n"], r["params"], "o", color=color, markerfacecolor=face)
            b.plot(r["n"], r["seconds"], "o", color=color, markerfacecolor=face)
    a.set(xscale="log", yscale="log", xlabel="n (random labels)", ylabel="parameters")
    b.set(xscale="log", yscale="log", xlabel="n", ylabel="seconds (construct, or train)")
    a.legend(fontsize=8, title="hollow: not fitted")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
