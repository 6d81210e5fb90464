"""The sandbox screen: a free SMTP session beside its wire view."""
