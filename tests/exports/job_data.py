"""Facts about the `judged` fixture (tests/exports/conftest.py) that tests assert on."""

# Items 0-5: two votes for A (kept); 6-7: A and B (no majority); 8-9: A and a tie (kept:
# the tie is not counted). So a default dpo export has 8 rows.
KEPT = 8
