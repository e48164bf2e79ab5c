"""An isolate-compatible front end (``sandbox isolate``, the ``isolate`` executable).

``options`` parses isolate's command line, ``box`` keeps its box directory and
lock, ``rules`` maps its directory and environment rules onto a policy,
``main`` runs the modes (``--init``, ``--run``, ``--cleanup``); the meta file
and status line come from ``sandbox.runner.meta``.
"""
