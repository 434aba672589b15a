"""The ``estrom`` command: tail, post and list queries from a terminal.

Plain blocking Python (argparse, http.client, ijson): it talks to the
tailor's and beater's HTTP APIs like any script would, and to Elasticsearch
and the router only for ``estrom queries``.
"""

from estrom_cli.main import main

__all__ = ["main"]
