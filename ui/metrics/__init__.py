"""The Metrics tab (`tab`: wiring; `layout`: components; `handlers`: its event handlers): `evaluate score` runs
as radar charts and capability bars (`figures`), Table 2/3, status and drill-down texts (`views`)."""
