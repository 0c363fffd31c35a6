"""Named training configurations: each module defines CONFIG and states its command and expected result."""
