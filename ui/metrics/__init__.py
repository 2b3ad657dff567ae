"""The Metrics tab (`tab`): `evaluate score` runs as radar charts, capability bars, Table 2/3 and drill-down."""
