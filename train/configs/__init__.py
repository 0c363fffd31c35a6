"""Named training configurations: each module defines CONFIG and states its command and expected result."""

import pkgutil


def names() -> list[str]:
    """The configuration names, sorted (a module's underscores written as dashes)."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__))
