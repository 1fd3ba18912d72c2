"""Background loops: peak tracking, partial confirmation, singleton following, rewards, payouts."""
