"""Experiments: the typed experiment file (spec), its plan of shared and per-run trainings, and
the runner that executes it in processes or on Dask (`kimtrain experiment`)."""
