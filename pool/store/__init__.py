"""Durable pool state: AbstractPoolStore and its implementations."""
