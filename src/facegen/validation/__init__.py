"""Validation reports over the manifest: great-expectations 1.x suites with data docs (:mod:`.expectations`) and
evidently drift reports against the previous run's manifest (:mod:`.drift`). Plain library code: the steps find the
previous run's manifest through ZenML and hand it in."""
