"""Driving policies, their output contract and the kinematic meta-action labeler."""
