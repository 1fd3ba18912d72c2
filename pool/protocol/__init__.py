"""Validation of Pool Protocol requests: authentication, farmers, partials, difficulty."""
