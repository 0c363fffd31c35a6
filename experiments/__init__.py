"""The paper's phenomena as experiments anyone can rerun (installed as ``resjax.experiments``).

Each experiment is a module with a frozen ``Config`` (its defaults are the documented
run; ``QUICK`` is a tiny one for CI), ``run(config, progress) -> list of row dicts`` (a
pure function of the config: seeded, float64 where it matters), ``plot(rows, path)``
and ``COLUMNS`` (the table's columns). ``resjax experiment NAME`` prints the table and
writes ``rows.json`` and ``NAME.png`` to its workdir; docs/experiments.md holds the results.
"""

from . import linear_gd

EXPERIMENTS = {"linear-gd": linear_gd}
