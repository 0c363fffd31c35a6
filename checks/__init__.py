"""The theorem checker for *Identity Matters in Deep Learning*, installed as ``resjax.checks``.

Every statement of the paper is checked exactly as printed, in float64, on instances
drawn by hypothesis and then attacked with ``jax.grad``; each ends *verified* or
*falsified* with a witness file that ``resjax check --replay FILE`` re-checks.

  >>> from resjax.checks import registry, runner
  >>> results = runner.run(registry.select(["claim-C.2"]), "quick")   # doctest: +SKIP
"""
