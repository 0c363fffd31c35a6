"""resjax: the reference implementation of *Identity Matters in Deep Learning*.

Hardt & Ma, ICLR 2017. Importing resjax changes no global JAX configuration.

Modules:
  resjax.linear       Section 2: deep linear residual networks, their risk and gradients,
                      and the small-norm factorisation of Theorem 2.1.
  resjax.normal_form  Claim C.1: the real normal form of a normal matrix.
  resjax.checks       the numerical theorem checker (``resjax check``).
"""

__version__ = "0.1.0"
