"""The science run (issue 17): the paper's experiment at a scale networks learn from, resumable,
with a committed report (:mod:`.run`, :mod:`.report`, :mod:`.settings`)."""
