"""Use cases: read state through the dal and adapters, let core decide, act,
record. One module per flow; handlers call exactly one function here."""
