"""Logstash's ``elasticsearch`` output, replayed: the HTTP requests it makes, in its order, reacting as it does.

Logstash cannot run on the test machine, so this client makes the requests
logstash-output-elasticsearch (the 11.x/12.x line that Logstash 8.x ships)
makes against an Elasticsearch 7 endpoint, and decides what to do next from
each answer the way the plugin's code does. It is written from the plugin's
source, read in its repository logstash-plugins/logstash-output-elasticsearch
(what each step follows is named where it is done):

- ``lib/logstash/outputs/elasticsearch.rb`` (11.22 line): ``register``
  builds the client (whose pool runs the first health check at once), then a
  thread waits for a live connection and runs ``finish_register``: data
  stream version check, ``discover_cluster_uuid``, ``install_template``,
  ``setup_ilm if ilm_in_use?``. A ``ConfigurationError`` or any
  ``BadResponseCodeError`` there (but 429, retried) stops the pipeline
  ("Failed to bootstrap"); ``setup_ecs_compatibility_related_defaults`` gives
  the default index, rollover alias and template name.
- ``lib/logstash/outputs/elasticsearch/http_client/pool.rb`` (11.18+,
  serverless-aware): ``healthcheck!`` is ``HEAD`` of the health-check path
  (``/``), then ``GET /``; 401 and 403 on ``GET /`` are configuration errors;
  ``elasticsearch?`` wants, from 7.14 on, the ``X-Elastic-Product:
  Elasticsearch`` answer header; then the license checker.
- ``lib/logstash/outputs/elasticsearch/license_checker.rb``: ``GET
  /_license``; status ``active`` makes the connection alive, no license
  leaves it dead (Logstash then never sends anything).
- ``lib/logstash/outputs/elasticsearch/http_client/manticore_adapter.rb``:
  ``Content-Type: application/json`` on every request; every status outside
  2xx but 404 raises ``BadResponseCodeError``; user and password go as
  preemptive Basic authentication. Manticore (Apache HttpClient) adds
  ``Accept-Encoding: gzip,deflate`` and decodes compressed answers.
- ``lib/logstash/outputs/elasticsearch/http_client.rb`` (12.1.6's
  ``bulk``/``bulk_send``, ``prepare_user_agent``, ``exists?``,
  ``template_put``, ``rollover_alias_*``, ``ilm_policy_*``): the bulk body
  gzipped (``compression_level`` default 1, ``http_compression`` deprecated;
  ``lib/logstash/plugin_mixins/elasticsearch/api_configs.rb``) with
  ``Content-Encoding: gzip``, ``X-Elastic-Event-Count`` and
  ``X-Elastic-Uncompressed-Request-Length``; the ``x-elastic-product-origin:
  logstash-output-elasticsearch`` header is the one
  ``spec/integration/outputs/compressed_indexing_spec.rb`` expects. The
  version numbers in the ``User-Agent`` are illustrative.
- ``lib/logstash/outputs/elasticsearch/http_client_builder.rb``: the bulk
  path ``/_bulk?filter_path=errors,items.*.error,items.*.status``
  (``resolve_filter_path``) and the health-check path ``/``.
- ``lib/logstash/outputs/elasticsearch/data_stream_support.rb``: with
  ``data_stream`` unset (``auto``) on Logstash 8, whose
  ``pipeline.ecs_compatibility`` defaults to ``v8``, a configuration of only
  ``hosts``/``user``/``password`` resolves to data streams: ``create`` into
  ``logs-generic-default`` (or the event's ``data_stream.*``), the event's
  ``data_stream`` fields filled in, and no template management.
- ``lib/logstash/outputs/elasticsearch/ilm.rb`` (11.x): ``ilm_enabled =>
  auto`` is on for Elasticsearch 7+ when the index is the default one: the
  11.x line no longer asks ``_xpack`` whether ILM is there. Set-up:
  ``HEAD /<rollover alias>``, ``PUT /<alias-{now/d}-000001>`` with the write
  alias (400 taken as "exists"), ``GET /_ilm/policy/logstash-policy``, its
  ``PUT`` with ``default-ilm-policy.json``.
- ``lib/logstash/outputs/elasticsearch/template_manager.rb``: ``template_api
  => auto`` is the legacy ``_template`` below Elasticsearch 8; the name is
  the rollover alias when ILM is on, else ``template_name`` (``logstash``);
  ILM adds ``index.lifecycle.name``/``rollover_alias`` to the settings;
  ``HEAD /_template/<name>``, then ``PUT`` unless it exists. The body here is
  a subset of the plugin's ``templates/ecs-disabled/elasticsearch-7x.json``
  (legacy layout, as ``elasticsearch-8x.json`` beside it is in composable).
- ``lib/logstash/plugin_mixins/elasticsearch/common.rb`` (11.15+):
  ``discover_cluster_uuid`` is another ``GET /``; ``submit``: items 200/201
  succeed, 409 is dropped, 400/404 go to the dead letter queue (or are
  logged and dropped), every other status (429, 403, 5xx) is retried,
  resending only those actions, with exponential backoff, forever.

What is not replayed: the waits (the 2 s doubling backoff, the 5 s
resurrectionist), sniffing (off by default), the serverless branches, 413
splitting, and the retry of a whole bulk answered non-200 (raised here).

The replay is split by what it replays: ``transport.py`` (the HTTP
client), ``bootstrap.py`` (the start-up: health check, license, template,
ILM) and ``bulk.py`` (events as bulk actions, and the whole output).
"""
