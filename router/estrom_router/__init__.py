"""Code crossbar runs inside the router worker (``options.pythonpath`` of router/config.json).

Imported from the router's own virtualenv, which has crossbar and autobahn but
none of the services' packages: the project modules imported here are a few of
``common/`` (``contract.py``, ``readers.py``, ``quotas.py`` and what they
import), standard library only but for ``metrics.py`` (prometheus-client, in
router/requirements.txt). The config's pythonpath adds the repository root for
them; the Dockerfile's router stage copies exactly these.
"""
