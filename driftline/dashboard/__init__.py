"""``driftline dashboard``: a live web page per model (aiohttp + server-sent events + Plotly).

- :mod:`driftline.dashboard.data`: what the page shows, read from Redis (metrics and detector
  readings over time, open alarms, the model-version timeline) - no web code;
- :mod:`driftline.dashboard.feed`: the alarms topic followed live, kept per model;
- :mod:`driftline.dashboard.server`: the HTTP routes, the SSE stream and ``/metrics``;
- ``static/``: the page; Plotly is served from the installed ``plotly`` package, so the page
  needs no network beyond the dashboard itself.
"""
