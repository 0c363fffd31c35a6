"""A workdir belongs to one run: a lock, the run's stored configuration, and a metrics
log that matches its checkpoints.

* **Lock.** Each process of a run holds an exclusive ``flock`` on ``lock.<process index>``
  for as long as it trains, and records itself there (pid, host, start, command). A
  second run on the same workdir is refused with that record. The kernel drops a flock
  when its process dies, SIGKILL included, so a lock left by a killed run is free: the
  next run takes it over and says whose it was (the record it finds is not empty,
  because a run that ends normally empties it). Stdlib ``fcntl`` rather than the
  ``filelock`` package: that package truncates the lock file on every attempt, which
  would erase the holder's record that the refusal quotes.
* **Configuration.** ``config.json`` holds the configuration the checkpoints were
  trained with and the history of explicit changes. A resume with different values
  (other than the bookkeeping fields, which never change the parameters) is refused
  with the list of differences unless the caller allows it (``--allow-config-change``).
* **Metrics.** On resume, ``metrics.jsonl`` is cut back to the checkpoint's step (rows
  logged after it are logged again by the resumed run), and rows a kill left half
  written are dropped.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
import socket

from .config import BOOKKEEPING, TrainConfig


class WorkdirError(ValueError):
    """The workdir cannot be used as asked; the message says why and what to do."""


def _atomic_write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Lock:
    """``with Lock(workdir, process_index, command) as lock:`` holds the workdir for one run.

    Raises WorkdirError when another live process holds it. ``lock.stale`` is the record
    of a holder that died without releasing it (taken over), or None.
    """

    def __init__(self, workdir: pathlib.Path, process_index: int = 0, command: str = ""):
        self.path = pathlib.Path(workdir) / f"lock.{process_index}"
        self.command = command
        self.fd = None
        self.stale = None

    def __enter__(self) -> "Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(self.path)
        self.fd, self.stale = fd, _read(fd) or None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        os.ftruncate(self.fd, 0)  # an empty record: released, not abandoned
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def stale_note(self) -> str | None:
        """One line about the dead holder this lock was taken over from, if any."""
        if self.stale is None:
            return None
        return f"took over the lock of {_describe(self.stale)}, which ended without releasing it (killed?)"


def _acquire(path: pathlib.Path) -> int:
    """A descriptor of ``path`` holding its exclusive flock; WorkdirError naming the holder if taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(_read(fd))
        os.close(fd)
        raise WorkdirError(
            f"workdir {path.parent} is in use by {holder}; wait for that run to finish, stop it, or use another --workdir."
        ) from None
    return fd


def check_free(workdir, process_index: int = 0) -> None:
    """Raises WorkdirError if a live run holds the workdir; writes nothing."""
    path = pathlib.Path(workdir) / f"lock.{process_index}"
    if path.exists():
        fd = _acquire(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(fd: int) -> dict:
    raw = os.pread(fd, 65536, 0)
    if not raw:
        return {}
    try:
        record = json.loads(raw)
    except ValueError:  # a holder killed while writing its record
        record = None
    return record if isinstance(record, dict) else {"pid": "?", "host": "?", "command": raw.decode(errors="replace")}


def _describe(record: dict) -> str:
    if not record:
        return "another process"
    return (f"pid {record.get('pid')} on {record.get('host')} since {record.get('started', '?')}"
            + (f" ({record['command']})" if record.get("command") else ""))


def _plain(config: TrainConfig) -> dict:
    """The configuration as JSON values (tuples become lists), for storing and comparing."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def differences(stored: dict, config: TrainConfig) -> dict:
    """{field: (stored value, new value)} over the fields that change training. A field
    the stored configuration lacks was added to resjax after that run began, which
    therefore trained with its default."""
    new, stored = _plain(config), {**_plain(TrainConfig()), **stored}
    return {k: (stored.get(k), new.get(k)) for k in sorted(new.keys() | stored.keys())
            if k not in BOOKKEEPING and stored.get(k) != new.get(k)}


def reconcile(workdir, config: TrainConfig, checkpoint_step: int | None, allow_change: bool,
              write: bool = True) -> dict:
    """Checks ``config`` against the one the workdir's checkpoints were trained with.

    With no checkpoint the run starts afresh and its configuration is stored. With one,
    a configuration that differs in a field that changes training is refused (listing
    the differences) unless ``allow_change``; an allowed change is recorded in the
    history with the step it takes effect at. ``write=False`` only checks (processes
    other than the first, dry runs). Returns the differences.
    """
    path = pathlib.Path(workdir) / "config.json"
    record = json.loads(path.read_text()) if path.exists() else None
    diff = {} if checkpoint_step is None or record is None else differences(record["config"], config)
    if diff and not allow_change:
        listed = "; ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in diff.items())
        raise WorkdirError(
            f"workdir {workdir} holds a run at step {checkpoint_step} trained with a different configuration "
            f"({listed}). Resume it unchanged, use another --workdir, or pass --allow-config-change to "
            "continue its checkpoint with the new values."
        )
    if write:
        history = (record or {}).get("history", []) if checkpoint_step is not None else []
        if diff:
            history = history + [{"step": checkpoint_step, "changed": {k: list(v) for k, v in diff.items()}}]
        _atomic_write(path, json.dumps({"config": _plain(config), "history": history}, indent=1))
    return diff


def trim_metrics(workdir, step: int) -> int:
    """Keeps the rows of metrics.jsonl up to ``step`` (and drops half-written ones);
    returns how many rows were removed."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    kept = [line for line in lines if _step(line) <= step]
    if len(kept) < len(lines):
        _atomic_write(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


def _step(line: str) -> float:
    """The row's step; infinity for a row a kill left half written."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return float("inf")
