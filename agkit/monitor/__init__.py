"""`agkit monitor`: live terminal and web dashboards and Prometheus exposition.

Modules (each imported only when used):
    series   bounded per-series ring buffers keyed by name + labels; metric validation
    state    the trading picture built from records (books, positions, orders, fills, risk)
    prom     Prometheus text exposition
    web      HTTP + WebSocket server: dashboard page, ingest, /health, /metrics
    tui      the rich full-screen terminal dashboard
    push     the client any stage uses to push metrics (--metrics-url / AGKIT_METRICS_URL)
    stage    the `Monitor` stage and `run_monitor`
    vendor   build step that installs uPlot from npm into static/
"""
