"""Pure domain logic: models, fleet expansion, planning, trust policies, maps.

Nothing in this package performs I/O or imports boto3 / kubernetes; every
function takes values and returns values, so it can be tested exhaustively.
"""
