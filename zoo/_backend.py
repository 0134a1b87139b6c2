"""Select the PyTorch backend for DGL before any module imports ``dgl``."""

import os

os.environ.setdefault("DGLBACKEND", "pytorch")
