"""Billing reports for the ERP: renewals of a period, and active subscriptions per reseller on a day."""
