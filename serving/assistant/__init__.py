"""The clinical assistant: guarded data tools, the grounded planner, citations."""
