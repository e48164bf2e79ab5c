"""An isolate-compatible front end (``sandbox isolate``, the ``isolate`` executable).

``options`` parses isolate's command line, ``box`` keeps its box directory and
lock, ``rules`` maps its directory and environment rules onto a policy,
``meta`` renders a run record as isolate's meta file and status, ``main``
runs the modes (``--init``, ``--run``, ``--cleanup``).
"""
