"""The batched closed-loop simulator: B scenes × N objects, advanced by pure step functions."""
