"""The results contract: names, builders, validators and readers of the result Datasets.

At the bottom of the import graph (it imports no training, study, stats or figures
code): ``study.collect`` (for studies, ``lprcausal transplant`` and the runs of a user's
own loop, :mod:`lprcausal.api.own_results`) and the checkpoint transplant
(:mod:`lprcausal.api.checkpoint_transplant`) write Datasets through
:mod:`~lprcausal.results.build`; ``stats`` and ``figures`` check them with
:mod:`~lprcausal.results.check` and read the recorded design with
:mod:`~lprcausal.results.read`. Files are written and read by :mod:`~lprcausal.results.io`.
"""
