"""Quality study: does the dropout search beat hand-picked baselines? (``python -m benchmarks.quality``).

The default study is MNIST-1D (:mod:`.mnist1d`: an MLP search submitted over HTTP to an in-process service,
:mod:`.service`, then re-trained on fresh seeds and tested; tables in :mod:`.mnist1d_report`). The earlier
digits / rotated-digits study (``--study digits``) uses the modules below.

Modules: :mod:`.data` (study datasets with a search/final split of the evaluation images), :mod:`.config` (study
sizes and the baseline patterns), :mod:`.jobs` (children trained on a small pool of Ray actors), :mod:`.searches`
(random search and REINFORCE through ``run_search``), :mod:`.stats` and :mod:`.report` (tables, plots, masks),
:mod:`.study` (the whole study) and ``__main__`` (the command line). Results: ``docs/RESULTS.md``.
"""
