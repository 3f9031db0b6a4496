"""Paging bridges: alarms from ``<prefix>.alarms`` delivered to the people on call.

- :mod:`bridges.notice`: an alarms-topic record (a firing alarm or its resolution) as a
  :class:`~bridges.notice.Notice`, the one shape every sink formats;
- :mod:`bridges.alertmanager`, :mod:`bridges.pagerduty`, :mod:`bridges.webhooks`: the payload
  each receiver documents (Alertmanager webhook v4, PagerDuty Events API v2, a generic
  CloudEvents webhook, Slack incoming webhooks) - pure functions;
- :mod:`bridges.delivery`: HTTP POST with retries (exponential backoff with jitter, HTTP 429 and
  ``Retry-After`` honoured) and the verdict on each attempt;
- :mod:`bridges.sinks`: a receiver = a name, a payload builder and a delivery; configured from
  the environment (secrets too, never logged);
- :mod:`bridges.worker`: the Kafka loop that commits an alarm's offset only after every sink
  delivered it, parked it in ``<prefix>.alarms.retry`` or dead-lettered it.

No Faust here: the bridge is a plain aiokafka consumer group.
"""
