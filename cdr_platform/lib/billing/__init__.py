"""Billing as documents: a bill (what dbt's billing models hold) rendered for the customer.

Plain Python (no Dagster): documents.py turns one bill into a PDF. Nothing issues documents yet;
a later step reads the bills from the warehouse, numbers them and calls it.
"""
