"""The trainer (Section 4), installed as resjax.train: data, step, loop, configurations.

  resjax train --config digits        # the embedded default
  resjax train --config paper         # Section 4's CIFAR recipe
"""
