"""Cost: offline token counting (tokens), the price table (prices), exact costs (calc),
budgets (budgets), usage records and their sinks (usage), spend reports (report).

The public names are exported lazily from ``chatgate`` itself (``chatgate.count_tokens``,
``chatgate.estimate_cost``, ...); import submodules here for the rest.
"""
