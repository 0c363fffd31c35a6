"""The trainer (Section 4), installed as resjax.train. Arrives with the Section 4 issue."""
