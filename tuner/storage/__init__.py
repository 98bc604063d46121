"""The study storage: which URLs tuner opens and how (``urls``), Optuna's storages built
from them (``backends``), the gRPC proxy (``proxy``), the writability check made before
anything exists (``writable``) and what tuner records on a study (``records``).

Imports only ``tuner.errors`` and ``tuner.secrets``: every layer above may use it.
"""
