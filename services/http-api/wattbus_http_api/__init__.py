"""http-api: the site over HTTP (MeterHub JSON, GivTCP REST, own REST + OpenAPI) and the web UI."""
