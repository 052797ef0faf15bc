"""The public Python API for a user's own training loop (see ``lprcausal`` for the list).

Every function accepts an ``nn.Module`` (its prunable set, :func:`prunable`) or a
``name -> tensor`` mapping, and returns masks as ``name -> bool tensor`` (True = kept).
"""
