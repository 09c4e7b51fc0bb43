"""segsync serve: webhooks from the services applied within seconds, a schedule of full syncs,
``/healthz`` and ``/metrics``. See the distribution's README."""
