"""Backbone weight files fetched from where their makers publish them."""
