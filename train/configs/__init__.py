"""Named training configurations: each module defines CONFIG and states its command and expected result."""

import pkgutil


def names() -> list[str]:
    """The configuration names, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))
