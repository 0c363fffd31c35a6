"""The order of training examples: a pure function of (seed, position in the stream).

Epochs are independent permutations of the training set; the image at global position
p is record ``permutation(seed, p // n)[p % n]``, and the batch at step s holds positions
[s·B, (s+1)·B). Both input pipelines use it, so a CIFAR run sees the same images at each
step whether its data sit on the device or stream from the host, and a resumed run sees
what an uninterrupted one would.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=2)
def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of range(n) for one epoch, drawn once (it is on every step's path)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def record(seed: int, position: int, n: int) -> int:
    """The record at one position of the stream."""
    return int(epoch_order(seed, position // n, n)[position % n])


def batch_indices(seed: int, step: int, batch: int, n: int) -> np.ndarray:
    """Indices of the batch at ``step`` (batch size ``batch``, n records)."""
    pos = np.arange(step * batch, (step + 1) * batch)
    out = np.empty(batch, dtype=np.int32)
    for epoch in np.unique(pos // n):
        sel = pos // n == epoch
        out[sel] = epoch_order(seed, int(epoch), n)[pos[sel] % n]
    return out


def first_flip(seed: int, records, xp=np):
    """Under alternating flips, whether each record is mirrored in even epochs (epoch 0
    first): one bit of a murmur3 finaliser of (seed, record), in uint32 arithmetic that
    NumPy (the host's pipeline) and jax.numpy (the device's, ``xp=jnp``) compute alike, so
    both flip the same images. records: int array -> bool array of its shape."""
    records = xp.asarray(records)  # as a 1-D array: NumPy warns of the wrap-around in scalar products
    x = records.astype(xp.uint32).reshape(-1) ^ xp.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
    x = (x ^ (x >> 16)) * xp.uint32(0x85EBCA6B)
    x = (x ^ (x >> 13)) * xp.uint32(0xC2B2AE35)
    return (((x ^ (x >> 16)) & 1) == 1).reshape(records.shape)


def alternating_flips(seed: int, records, epochs, xp=np):
    """Alternating flips (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds"): a record is
    mirrored in epoch e iff first_flip XOR e is odd, so every image is seen both ways in
    every two consecutive epochs, instead of each way with probability 1/2 in each."""
    return first_flip(seed, records, xp) ^ (xp.asarray(epochs) % 2 == 1)


class Shard:
    """Local position -> global position, for one process of several: process ``process``
    reads elements [p·local, (p+1)·local) of every global batch of ``batch`` elements.
    Picklable (the loader's worker processes call it)."""

    def __init__(self, local: int, batch: int, process: int):
        self.local, self.batch, self.process = local, batch, process

    def __call__(self, j: int) -> int:
        return (j // self.local) * self.batch + self.process * self.local + j % self.local
