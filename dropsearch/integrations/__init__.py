"""Patterns in your own training loop: PyTorch Lightning and the Hugging Face ``Trainer``.

:mod:`dropsearch.integrations.lightning` and :mod:`dropsearch.integrations.hf` import their framework when they are
imported themselves (``pip install lightning`` / ``pip install transformers accelerate``); this package imports
neither. :mod:`dropsearch.integrations.step` (torch only) holds the step both share.
"""
