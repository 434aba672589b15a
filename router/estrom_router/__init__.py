"""Code crossbar runs inside the router worker (``options.pythonpath`` of router/config.json).

Imported from the router's own virtualenv, which has crossbar and autobahn but
none of the services' packages: the only project modules imported here are
``common/readers.py`` and ``common/quotas.py``, standard library only (the
config's pythonpath adds the repository root for them).
"""
