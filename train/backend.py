"""JAX's backend, configured and started before the trainer needs it.

XLA reads its flags, and JAX the number of virtual CPU devices, once, when the backend
starts; ``add_xla_flags`` and ``split_cpu`` set them before that. ``Start`` then starts
the backend in a thread of its own. On a GPU starting it (loading the CUDA plugin,
creating the context and the memory pool) is likely most of the 4.7-s setup phase that
came before the training step's compile could begin (`fast` on an H200, 2026-11-30:
``phases`` in docs/results/fast_h200_ws_lr04_seed0_summary.json; the same phase takes
0.7 s on a 2-core CPU), and that compile is what a short run waits for longest. Started
as soon as the configuration is known, the backend comes up while the trainer's modules
are imported and the data is listed.

This module imports nothing heavier than JAX, so that the thread can start before the
rest of resjax.train is imported.
"""

from __future__ import annotations

import os
import threading
import time

import jax


def split_cpu(count: int | None) -> None:
    """Asks for ``count`` virtual CPU devices unless XLA_FLAGS already chose a number. Call
    it before anything touches a device; it only matters where JAX's backend is the CPU."""
    if count and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        jax.config.update("jax_num_cpu_devices", count)


def add_xla_flags(flags: tuple[str, ...]) -> None:
    """Appends those of ``flags`` (a configuration's xla_flags) that XLA_FLAGS lacks to it.
    XLA reads the variable once, when JAX starts its backend, so this must run before
    anything touches a device; after that it refuses, rather than let XLA ignore them."""
    have = os.environ.get("XLA_FLAGS", "").split()
    missing = [f for f in flags if f not in have]
    if not missing:
        return
    if started():
        raise ValueError(f"xla_flags={list(flags)}: JAX has already started its backend, so XLA would ignore "
                         f"{' '.join(missing)}; set XLA_FLAGS in the environment before starting Python, or "
                         "run `resjax train` in a fresh process.")
    os.environ["XLA_FLAGS"] = " ".join([*have, *missing])


def started() -> bool:
    """Whether JAX has started its backend (False where this JAX cannot say)."""
    from jax._src import xla_bridge  # private, but the only way to know

    return getattr(xla_bridge, "backends_are_initialized", lambda: False)()


class BackendError(RuntimeError):
    """JAX could not start its backend (a missing plugin, an unknown JAX_PLATFORMS)."""


class Start(threading.Thread):
    """Starts JAX's backend in this thread: ``Start(config).start()`` after setting the
    configuration's xla_flags and virtual CPU devices. Anything that then touches a device
    waits for it (JAX starts its backend once, under a lock); jaxlib releases the GIL
    while it creates the client (on a GPU likely most of the start), so the thread that started
    this one goes on with its Python work meanwhile.
    ``wait()`` returns once the backend is up; ``seconds`` is how long starting it took."""

    def __init__(self, config):
        super().__init__(name="resjax-backend")  # not a daemon: an exit waits for it rather than cut CUDA off
        add_xla_flags(config.xla_flags)
        split_cpu(config.cpu_devices)
        self.seconds: float | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        began = time.perf_counter()
        try:
            jax.devices()
        except Exception as e:  # noqa: BLE001: wait() reports it to the thread that asks for the devices
            self.error = e
        self.seconds = time.perf_counter() - began

    def wait(self) -> None:
        """Returns once the backend has started; raises BackendError, with JAX's reason, if it could not."""
        self.join()
        if self.error is not None:
            raise BackendError(f"JAX could not start its backend: {self.error}") from None
