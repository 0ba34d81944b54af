"""The market inside the state machine: conditions, the indexed book, matching, settlement.

Matching decides (``book``: reads only, returns fills); settlement applies (``settlement``).
"""
