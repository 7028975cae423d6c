"""Deduplication: exact (content hashes) and near duplicates (MinHash + LSH, verified by exact
Jaccard). `minhash` and `lsh` are pure (numpy, no ORM); `services` and `tasks` use the database.
See docs/curation.md for the parameters and how they were chosen.
"""
