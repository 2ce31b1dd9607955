"""dropsearch.runner: executes queued searches through ``workers.run_search`` and stores everything they report."""

from dropsearch.runner.execution import SearchExecution, decode_state, encode_state
from dropsearch.runner.runner import Runner, default_runner_id

__all__ = ["Runner", "SearchExecution", "decode_state", "default_runner_id", "encode_state"]
