"""Batch runs over archives: the run, its executors (local threads, Dask), the output store and its
manifest, shards and their merge, and the writers of each image's outputs."""
