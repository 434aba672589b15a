"""Code crossbar runs inside the router worker (``options.pythonpath`` of router/config.json).

Imported from the router's own virtualenv, which has crossbar and autobahn but
not estrom: nothing here may import the project's packages.
"""
