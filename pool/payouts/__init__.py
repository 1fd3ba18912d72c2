"""Payout arithmetic in integer mojos."""
