"""The barrier behind black-box and label-only access: targets served to attacks.

- :mod:`.codec`: messages as safetensors bytes with a JSON header (nothing is unpickled).
- :mod:`.service`: :class:`~.service.TargetService`, the one object that holds a served
  target: answers queries after output processing, counts them, enforces the budget, seeds
  stochastic answers per query.
- :mod:`.channels`: how an access object reaches a service (pipe, loopback HTTP, or the
  same process for the Python API).
- :mod:`.worker`: :func:`~.worker.run_isolated`, a query-only attack run in a fresh
  interpreter that never holds the target.
- :mod:`.http`: ``invbench serve``, a target served over HTTP on this machine.
"""
