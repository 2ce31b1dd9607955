"""The parts of ``benchmarks/regularizers.py``.

What is timed (:mod:`.config`), how a cell is timed (:mod:`.cell`), how memory is measured (:mod:`.memory`) and how
a result is shown (:mod:`.report`).
"""
