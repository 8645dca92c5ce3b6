"""Our trained networks, shipped inside seplib as ``seplib.rnn_params`` (see pyproject.toml)."""
