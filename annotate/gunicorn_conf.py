"""gunicorn settings shared by bin/run, the Dockerfile and docker-compose.yml.

    gunicorn annotate.wsgi --config python:annotate.gunicorn_conf ...

Once a worker has loaded Django, every object alive then (modules, settings, URL patterns,
model metadata: most of the heap) is moved out of the garbage collector's sight, and the
youngest generation is collected less often: a request allocates thousands of short-lived
objects, and each collection otherwise walked that long-lived heap again.
"""

from __future__ import annotations

import gc
from typing import Any

# Allocations (less deallocations) before a young collection; CPython's default is 700.
YOUNG_THRESHOLD = 10_000


def post_worker_init(worker: Any) -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
