"""Access rules: who may read which targets, who may write which indices, and how much each may ask.

One room for every decision of access, standard library only (with the
store's parser of read targets, ``common/query/target_syntax.py``,
standard library only too): the router's embedded gate imports it from
its own virtualenv, which has none of the services' packages.

- ``scopes``: read targets as sets of names, and the conservative containment every rule rests on;
- ``readers``, ``writers``: the identities and what each may read or write;
- ``tokens``: credentials as requests present them, checked in constant time;
- ``access_file``, ``exposure``: the access file, and what "no file" may mean on which interface;
- ``quotas``, ``callers``: how much a caller may ask, and who a caller is for a quota.

The adapters that apply them are thin and live with their protocol:
``tailor/readers/`` (HTTP reads), ``router/estrom_router/readers_gate.py``
(WAMP subscriptions and the beater's ``admit`` question),
``beater/writers/`` (HTTP writes: ingest, bulk, pass-through) and
``beater/queries/reader_calls.py`` (WAMP registrations, decided by the router).
"""
