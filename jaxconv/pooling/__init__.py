"""Pooling: :func:`max_pool`, :func:`avg_pool`, :func:`global_avg_pool` and their
:class:`PoolSpec` (one file each: ``spec.py``, ``max_pool.py``, ``avg_pool.py``)."""

from jaxconv.pooling.avg_pool import avg_pool as avg_pool
from jaxconv.pooling.avg_pool import global_avg_pool as global_avg_pool
from jaxconv.pooling.max_pool import max_pool as max_pool
from jaxconv.pooling.spec import PoolSpec as PoolSpec
from jaxconv.pooling.spec import pool_spec as pool_spec

__all__ = ["PoolSpec", "avg_pool", "global_avg_pool", "max_pool", "pool_spec"]
